//! Forward and backward of every op against naive loop references on random small shapes
//! (fixed seeds), plus error cases.

#![allow(clippy::type_complexity)]

use dfdx::prelude::*;
use imle_conv::builders as cb;
use imle_conv::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Naive convolution geometry: input (b, c, h, w), weight (o, c, kh, kw), padding before
/// (ph, pw), output (oh, ow).
#[derive(Clone, Copy)]
struct G {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl G {
    /// Calls `f(xi, wi, oi)` for every multiply-add of the convolution.
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let g = *self;
        for n in 0..g.b {
            for oc in 0..g.o {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let oi = ((n * g.o + oc) * g.oh + oy) * g.ow + ox;
                        for ic in 0..g.c {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                                    let ix = (ox * g.sw + kx) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((n * g.c + ic) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((oc * g.c + ic) * g.kh + ky) * g.kw + kx;
                                    f(xi, wi, oi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    fn forward(&self, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let p = self.oh * self.ow;
        let mut y: Vec<f32> = (0..self.b * self.o * p)
            .map(|i| bias[(i / p) % self.o])
            .collect();
        self.each(|xi, wi, oi| y[oi] += x[xi] * w[wi]);
        y
    }
    fn backward(&self, x: &[f32], w: &[f32], gy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut gx, mut gw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
        self.each(|xi, wi, oi| {
            gx[xi] += w[wi] * gy[oi];
            gw[wi] += x[xi] * gy[oi];
        });
        let p = self.oh * self.ow;
        let mut gb = vec![0.0; self.o];
        for (i, v) in gy.iter().enumerate() {
            gb[(i / p) % self.o] += v;
        }
        (gx, gw, gb)
    }
}

/// Gradient of `sum(y * r)` for random `r`: returns (y, r, grads).
fn backprop<S: Shape>(
    dev: &Cpu,
    y: Tensor<S, f32, Cpu, OwnedTape<f32, Cpu>>,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<f32>, Gradients<f32, Cpu>) {
    let shape = *y.shape();
    let r = rand_vec(rng, shape.num_elements());
    let yv = y.as_vec();
    let rt = dev.tensor_from_vec(r.clone(), shape);
    let grads = (y * rt).sum::<Rank0, _>().backward();
    (yv, r, grads)
}

fn check_conv2d<const C: usize, const O: usize, const K: usize>(
    seed: u64,
    b: usize,
    h: usize,
    w: usize,
    s: usize,
    p: usize,
) {
    let dev = Cpu::seed_from_u64(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xv = rand_vec(&mut rng, b * C * h * w);
    let wv = rand_vec(&mut rng, O * C * K * K);
    let bv = rand_vec(&mut rng, O);
    let x = dev.tensor_from_vec(xv.clone(), (b, Const::<C>, h, w));
    let wt: Tensor<Rank4<O, C, K, K>, f32, _> =
        dev.tensor_from_vec(wv.clone(), (Const, Const, Const, Const));
    let bt: Tensor<Rank1<O>, f32, _> = dev.tensor_from_vec(bv.clone(), (Const,));
    let y = conv2d(x.leaky_trace(), &wt, Some(&bt), (s, s), (p, p)).unwrap();
    let (oh, ow) = ((h + 2 * p - K) / s + 1, (w + 2 * p - K) / s + 1);
    assert_eq!(*y.shape(), (b, Const::<O>, oh, ow));
    let g = G {
        b,
        c: C,
        h,
        w,
        o: O,
        kh: K,
        kw: K,
        sh: s,
        sw: s,
        ph: p,
        pw: p,
        oh,
        ow,
    };
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    let what = format!("conv2d C={C} O={O} K={K} b={b} h={h} w={w} s={s} p={p}");
    assert_close(&yv, &g.forward(&xv, &wv, &bv), 1e-4, &format!("{what} y"));
    let (gx, gw, gb) = g.backward(&xv, &wv, &r);
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-4, &format!("{what} gx"));
    assert_close(&grads.get(&wt).as_vec(), &gw, 1e-4, &format!("{what} gw"));
    assert_close(&grads.get(&bt).as_vec(), &gb, 1e-4, &format!("{what} gb"));
}

#[test]
fn conv2d_matches_reference() {
    check_conv2d::<3, 4, 3>(1, 2, 7, 6, 1, 1); // 3x3 stride 1 pad 1
    check_conv2d::<2, 5, 7>(2, 3, 13, 11, 2, 3); // ResNet stem geometry, odd sizes
    check_conv2d::<3, 2, 3>(3, 1, 5, 5, 2, 0); // stride without padding
    check_conv2d::<2, 3, 4>(4, 2, 4, 4, 3, 2); // even kernel, stride > 1, large padding
    check_conv2d::<4, 3, 1>(5, 2, 5, 3, 1, 0); // 1x1 (the GEMM-only path)
    check_conv2d::<2, 2, 1>(6, 2, 5, 5, 2, 0); // strided 1x1 (downsample)
    check_conv2d::<1, 2, 5>(7, 2, 5, 5, 1, 0); // kernel = input: 1x1 output
    check_conv2d::<3, 8, 3>(8, 1, 9, 9, 1, 1); // batch 1: parallel inside the GEMM
                                               // Winograd F(2x2, 3x3) (every stride-1 3x3): no padding, padding 2, even and odd
                                               // sizes, a batch split into the backward pass's fixed parts, more channels
    check_conv2d::<2, 3, 3>(9, 3, 6, 9, 1, 0);
    check_conv2d::<3, 2, 3>(10, 2, 5, 4, 1, 2);
    check_conv2d::<16, 24, 3>(11, 37, 8, 10, 1, 1);
    check_conv2d::<2, 2, 3>(12, 2, 3, 3, 1, 0); // one output
}

fn check_conv1d<const C: usize, const O: usize, const K: usize>(
    seed: u64,
    b: usize,
    l: usize,
    s: usize,
    pad: Padding1D,
) {
    let dev = Cpu::seed_from_u64(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xv = rand_vec(&mut rng, b * C * l);
    let wv = rand_vec(&mut rng, O * C * K);
    let bv = rand_vec(&mut rng, O);
    let x = dev.tensor_from_vec(xv.clone(), (b, Const::<C>, l));
    let wt: Tensor<Rank3<O, C, K>, f32, _> = dev.tensor_from_vec(wv.clone(), (Const, Const, Const));
    let bt: Tensor<Rank1<O>, f32, _> = dev.tensor_from_vec(bv.clone(), (Const,));
    let y = conv1d(x.leaky_trace(), &wt, Some(&bt), s, pad).unwrap();
    // the reference's own padding arithmetic
    let (before, ol) = match pad {
        Padding1D::Explicit(p) => (p, (l + 2 * p - K) / s + 1),
        Padding1D::Same => {
            let ol = l.div_ceil(s);
            let total = ((ol - 1) * s + K).saturating_sub(l);
            (total / 2, ol)
        }
    };
    assert_eq!(*y.shape(), (b, Const::<O>, ol));
    let g = G {
        b,
        c: C,
        h: 1,
        w: l,
        o: O,
        kh: 1,
        kw: K,
        sh: 1,
        sw: s,
        ph: 0,
        pw: before,
        oh: 1,
        ow: ol,
    };
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    let what = format!("conv1d K={K} l={l} s={s} {pad:?}");
    assert_close(&yv, &g.forward(&xv, &wv, &bv), 1e-4, &format!("{what} y"));
    let (gx, gw, gb) = g.backward(&xv, &wv, &r);
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-4, &format!("{what} gx"));
    assert_close(&grads.get(&wt).as_vec(), &gw, 1e-4, &format!("{what} gw"));
    assert_close(&grads.get(&bt).as_vec(), &gb, 1e-4, &format!("{what} gb"));
}

#[test]
fn conv1d_matches_reference() {
    check_conv1d::<5, 4, 3>(10, 3, 11, 1, Padding1D::Same);
    check_conv1d::<3, 2, 4>(11, 2, 9, 1, Padding1D::Same); // even kernel: 1 before, 2 after
    check_conv1d::<3, 2, 3>(12, 2, 10, 2, Padding1D::Same); // strided same
    check_conv1d::<2, 3, 5>(13, 2, 8, 3, Padding1D::Explicit(2));
    check_conv1d::<4, 4, 3>(14, 5, 7, 1, Padding1D::Explicit(0));
    check_conv1d::<2, 2, 3>(15, 2, 1, 1, Padding1D::Same); // length 1
                                                           // Winograd F(2, 3) (every stride-1 3-tap): odd and even lengths, padding 2, many
                                                           // channels and a batch larger than the backward pass's parts
    check_conv1d::<24, 17, 3>(16, 37, 35, 1, Padding1D::Same);
    check_conv1d::<3, 4, 3>(17, 2, 6, 1, Padding1D::Explicit(2));
    check_conv1d::<3, 4, 3>(18, 1, 3, 1, Padding1D::Explicit(0));
}

#[test]
fn padding_same_amounts() {
    assert_eq!(Padding1D::Same.amounts(10, 3, 1), (1, 1));
    assert_eq!(Padding1D::Same.amounts(10, 4, 1), (1, 2));
    assert_eq!(Padding1D::Same.amounts(10, 3, 2), (0, 1));
    assert_eq!(Padding1D::Explicit(2).amounts(10, 3, 2), (2, 2));
}

/// Naive max pooling over planes (-inf padding, first maximum wins).
fn ref_max_pool(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> (Vec<f32>, Vec<usize>, usize, usize) {
    let (oh, ow) = ((h + 2 * p.0 - k.0) / s.0 + 1, (w + 2 * p.1 - k.1) / s.1 + 1);
    let (mut y, mut arg) = (vec![], vec![]);
    for pl in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
                for ky in 0..k.0 {
                    for kx in 0..k.1 {
                        let iy = (oy * s.0 + ky) as isize - p.0 as isize;
                        let ix = (ox * s.1 + kx) as isize - p.1 as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let i = pl * h * w + iy as usize * w + ix as usize;
                        if at == usize::MAX || x[i] > best || (x[i] == best && i < at) {
                            best = x[i];
                            at = i;
                        }
                    }
                }
                y.push(best);
                arg.push(at);
            }
        }
    }
    (y, arg, oh, ow)
}

fn check_max_pool2d(seed: u64, b: usize, h: usize, w: usize, k: usize, s: usize, p: usize) {
    check_max_pool2d_levels(seed, b, h, w, k, s, p, None)
}

/// With `levels`, the input takes that many distinct values only, so windows have ties
/// (the first maximum in row-major order must win).
#[allow(clippy::too_many_arguments)]
fn check_max_pool2d_levels(
    seed: u64,
    b: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    levels: Option<f32>,
) {
    const C: usize = 3;
    let dev = Cpu::seed_from_u64(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut xv = rand_vec(&mut rng, b * C * h * w);
    if let Some(l) = levels {
        xv.iter_mut().for_each(|v| *v = (*v * l).round());
    }
    let x = dev.tensor_from_vec(xv.clone(), (b, Const::<C>, h, w));
    let y = max_pool2d(x.leaky_trace(), (k, k), (s, s), (p, p)).unwrap();
    let (want, arg, oh, ow) = ref_max_pool(&xv, b * C, (h, w), (k, k), (s, s), (p, p));
    assert_eq!(*y.shape(), (b, Const::<C>, oh, ow));
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    assert_close(&yv, &want, 0.0, "max_pool2d y");
    let mut gx = vec![0.0; xv.len()];
    for (a, v) in arg.iter().zip(&r) {
        gx[*a] += v;
    }
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-6, "max_pool2d gx");
}

#[test]
fn max_pool2d_matches_reference() {
    check_max_pool2d(20, 2, 9, 8, 3, 2, 1); // ResNet's 3x3/2/1
    check_max_pool2d(25, 2, 8, 9, 3, 2, 1); // odd width
    check_max_pool2d_levels(26, 2, 10, 11, 3, 2, 1, Some(1.0)); // ties: first maximum
    check_max_pool2d_levels(27, 1, 7, 7, 3, 2, 0, Some(1.0)); // general path, ties
    check_max_pool2d(21, 3, 6, 6, 2, 2, 0); // 2x2/2
    check_max_pool2d(22, 2, 7, 5, 2, 2, 0); // odd sizes: last row/col dropped
    check_max_pool2d(23, 1, 5, 5, 3, 1, 1);
    check_max_pool2d(24, 2, 4, 4, 4, 1, 2); // padding = half the kernel
}

#[test]
fn max_pool1d_and_module_match_reference() {
    let dev = Cpu::seed_from_u64(30);
    let mut rng = ChaCha8Rng::seed_from_u64(30);
    let (b, l) = (2, 11);
    let xv = rand_vec(&mut rng, b * 4 * l);
    let x = dev.tensor_from_vec(xv.clone(), (b, Const::<4>, l));
    let y = MaxPool1D::<3, 2, 1>.forward(x.leaky_trace());
    let (want, arg, _, ol) = ref_max_pool(&xv, b * 4, (1, l), (1, 3), (1, 2), (0, 1));
    assert_eq!(*y.shape(), (b, Const::<4>, ol));
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    assert_close(&yv, &want, 0.0, "max_pool1d y");
    let mut gx = vec![0.0; xv.len()];
    for (a, v) in arg.iter().zip(&r) {
        gx[*a] += v;
    }
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-6, "max_pool1d gx");
}

#[test]
fn adaptive_and_global_pools_match_reference() {
    let dev = Cpu::seed_from_u64(40);
    let mut rng = ChaCha8Rng::seed_from_u64(40);
    let (b, h, w) = (2, 6, 9);
    let xv = rand_vec(&mut rng, b * 3 * h * w);
    let x = dev.tensor_from_vec(xv.clone(), (b, Const::<3>, h, w));

    let y = AdaptiveMaxPool2D::<2, 3>.forward(x.leaky_trace());
    let (want, arg, _, _) = ref_max_pool(&xv, b * 3, (h, w), (3, 3), (3, 3), (0, 0));
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    assert_close(&yv, &want, 0.0, "adaptive y");
    let mut gx = vec![0.0; xv.len()];
    for (a, v) in arg.iter().zip(&r) {
        gx[*a] += v;
    }
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-6, "adaptive gx");

    let y = GlobalMaxPool.forward(x.leaky_trace());
    let (want, arg, _, _) = ref_max_pool(&xv, b * 3, (h, w), (h, w), (1, 1), (0, 0));
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    assert_close(&yv, &want, 0.0, "global max y");
    let mut gx = vec![0.0; xv.len()];
    for (a, v) in arg.iter().zip(&r) {
        gx[*a] += v;
    }
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-6, "global max gx");

    let y = GlobalAvgPool.forward(x.leaky_trace());
    let hw = h * w;
    let want: Vec<f32> = xv
        .chunks(hw)
        .map(|p| p.iter().sum::<f32>() / hw as f32)
        .collect();
    let (yv, r, grads) = backprop(&dev, y, &mut rng);
    assert_close(&yv, &want, 1e-5, "global avg y");
    let gx: Vec<f32> = (0..xv.len()).map(|i| r[i / hw] / hw as f32).collect();
    assert_close(&grads.get(&x).as_vec(), &gx, 1e-6, "global avg gx");

    // over time: (batch, C, len)
    let x1 = dev.tensor_from_vec(xv[..b * 3 * 7].to_vec(), (b, Const::<3>, 7));
    let want: Vec<f32> = xv[..b * 3 * 7]
        .chunks(7)
        .map(|p| p.iter().cloned().fold(f32::MIN, f32::max))
        .collect();
    assert_close(
        &GlobalMaxPool.forward(x1).as_vec(),
        &want,
        0.0,
        "global max 1d",
    );
}

#[test]
fn bad_geometry_is_a_typed_error() {
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<(usize, Const<2>, usize, usize), f32, _> = dev.zeros_like(&(1, Const, 4, 4));
    let w: Tensor<Rank4<3, 2, 7, 7>, f32, _> = dev.zeros();
    assert!(matches!(
        conv2d(x.clone(), &w, None, (1, 1), (1, 1)),
        Err(ConvError::KernelTooLarge {
            axis: "height",
            kernel: 7,
            padded: 6
        })
    ));
    assert!(conv2d(x.clone(), &w, None, (1, 1), (2, 2)).is_ok());
    assert!(matches!(
        conv2d(x.clone(), &w, None, (0, 1), (3, 3)),
        Err(ConvError::ZeroStride)
    ));
    assert!(matches!(
        adaptive_max_pool2d::<3, 2, _, 2, _, _, _>(x.clone()),
        Err(ConvError::NotAMultiple {
            axis: "height",
            input: 4,
            output: 3
        })
    ));
    assert!(matches!(
        max_pool2d(x.clone(), (2, 2), (2, 2), (2, 2)),
        Err(ConvError::PaddingTooLarge { .. })
    ));
    assert!(matches!(
        max_pool2d(x.clone(), (5, 5), (1, 1), (0, 0)),
        Err(ConvError::KernelTooLarge { .. })
    ));
    let x1: Tensor<(usize, Const<2>, usize), f32, _> = dev.zeros_like(&(1, Const, 2));
    let w1: Tensor<Rank3<1, 2, 3>, f32, _> = dev.zeros();
    assert!(matches!(
        conv1d(x1.clone(), &w1, None, 1, Padding1D::Explicit(0)),
        Err(ConvError::KernelTooLarge { axis: "length", .. })
    ));
    assert!(conv1d(x1, &w1, None, 1, Padding1D::Same).is_ok());
    let mut bn = dev.build_module::<cb::BatchNorm2D<2>, f32>();
    let one: Tensor<(usize, Const<2>, usize, usize), f32, _> = dev.zeros_like(&(1, Const, 1, 1));
    assert!(matches!(
        bn.try_forward_train(one.leaky_trace(), None),
        Err(ConvError::Empty(_))
    ));
}

#[test]
#[should_panic(expected = "kernel size 3 is larger than the padded input size 2")]
fn module_forward_panics_on_bad_geometry() {
    let dev = Cpu::seed_from_u64(0);
    let m = dev.build_module::<cb::Conv2D<1, 1, 3>, f32>();
    let x: Tensor<(usize, Const<1>, usize, usize), f32, _> = dev.zeros_like(&(1, Const, 2, 2));
    let _ = m.forward(x);
}

#[test]
fn batch_norm_matches_hand_computation() {
    const C: usize = 3;
    let dev = Cpu::seed_from_u64(50);
    let mut rng = ChaCha8Rng::seed_from_u64(50);
    let (b, h, w) = (4, 3, 5);
    let (hw, n) = (h * w, b * h * w);
    let mut bn = dev.build_module::<cb::BatchNorm2D<C>, f32>();
    let gamma = rand_vec(&mut rng, C);
    let beta = rand_vec(&mut rng, C);
    bn.scale.copy_from(&gamma);
    bn.bias.copy_from(&beta);
    bn.momentum = 0.3;
    let xv: Vec<f32> = rand_vec(&mut rng, b * C * hw)
        .iter()
        .map(|v| 2.0 * v + 0.5)
        .collect();
    let x = dev.tensor_from_vec(xv.clone(), (b, Const::<C>, h, w));

    let chan = |c: usize| -> Vec<f64> {
        (0..b)
            .flat_map(|i| {
                xv[(i * C + c) * hw..(i * C + c + 1) * hw]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect()
    };
    let mean: Vec<f64> = (0..C)
        .map(|c| chan(c).iter().sum::<f64>() / n as f64)
        .collect();
    let var: Vec<f64> = (0..C)
        .map(|c| chan(c).iter().map(|v| (v - mean[c]).powi(2)).sum::<f64>() / n as f64)
        .collect();

    // train: normalised by batch statistics; running stats move by momentum (unbiased var)
    let y = bn.forward_mut(x.leaky_trace());
    let want: Vec<f32> = (0..xv.len())
        .map(|i| {
            let c = (i / hw) % C;
            (gamma[c] as f64 * (xv[i] as f64 - mean[c]) / (var[c] + 1e-5).sqrt() + beta[c] as f64)
                as f32
        })
        .collect();
    assert_close(&y.as_vec(), &want, 1e-4, "bn train y");
    let rm: Vec<f32> = mean.iter().map(|m| (0.3 * m) as f32).collect();
    let rv: Vec<f32> = var
        .iter()
        .map(|v| (0.7 + 0.3 * v * n as f64 / (n as f64 - 1.0)) as f32)
        .collect();
    assert_close(&bn.running_mean.as_vec(), &rm, 1e-5, "running mean");
    assert_close(&bn.running_var.as_vec(), &rv, 1e-5, "running var");

    // a second step keeps averaging
    let _ = bn.forward_mut(x.leaky_trace());
    let rm2: Vec<f32> = mean
        .iter()
        .zip(&rm)
        .map(|(m, r)| 0.7 * r + (0.3 * m) as f32)
        .collect();
    assert_close(
        &bn.running_mean.as_vec(),
        &rm2,
        1e-5,
        "running mean, 2 steps",
    );

    // eval: running statistics, and they do not change
    let before = bn.running_mean.as_vec();
    let y = bn.forward(x.clone());
    let rv2 = bn.running_var.as_vec();
    let want: Vec<f32> = (0..xv.len())
        .map(|i| {
            let c = (i / hw) % C;
            gamma[c] * (xv[i] - rm2[c]) / (rv2[c] + 1e-5).sqrt() + beta[c]
        })
        .collect();
    assert_close(&y.as_vec(), &want, 1e-4, "bn eval y");
    assert_eq!(bn.running_mean.as_vec(), before, "eval leaves running mean");

    // fused ReLU: same as BatchNorm2D then max(0)
    let mut bnr = dev.build_module::<cb::BatchNormReLU2D<C>, f32>();
    bnr.scale.copy_from(&gamma);
    bnr.bias.copy_from(&beta);
    let yr = bnr.forward_mut(x.leaky_trace()).as_vec();
    let y0 = bn
        .try_forward_train(x.leaky_trace(), None)
        .unwrap()
        .as_vec();
    let want: Vec<f32> = y0.iter().map(|v| v.max(0.0)).collect();
    assert_close(&yr, &want, 1e-6, "bn + relu fused");
}

/// Central finite differences of `sum(f(x) * r)` at a few coordinates of `x` (a step small
/// enough not to cross ReLU kinks here).
fn finite_diff_check(
    xv: &[f32],
    shape: (usize, Const<2>, usize, usize),
    analytic: &[f32],
    mut loss: impl FnMut(Vec<f32>) -> f32,
    what: &str,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let eps = 2e-3;
    for _ in 0..12 {
        let i = rng.gen_range(0..shape.num_elements());
        let (mut p, mut m) = (xv.to_vec(), xv.to_vec());
        p[i] += eps;
        m[i] -= eps;
        let fd = (loss(p) - loss(m)) / (2.0 * eps);
        assert!(
            (fd - analytic[i]).abs() < 2e-2 * (1.0 + fd.abs()),
            "{what}[{i}]: finite difference {fd}, analytic {}",
            analytic[i]
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let dev = Cpu::seed_from_u64(60);
    let mut rng = ChaCha8Rng::seed_from_u64(60);
    let shape = (3, Const::<2>, 6, 6);
    let xv = rand_vec(&mut rng, shape.num_elements());
    let r = rand_vec(&mut rng, shape.num_elements());

    // sum(y * r) for the first elements of a fixed random r
    let weighted = |y: Tensor<(usize, Const<2>, usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>| {
        let n = y.shape().num_elements();
        let rt = dev.tensor_from_vec(r[..n].to_vec(), *y.shape());
        (y * rt).sum::<Rank0, _>()
    };

    // conv (stride 2, padding 1) -> train-mode batch norm -> conv: smooth in x
    type Net = (
        cb::Conv2D<2, 3, 3, 2, 1>,
        cb::BatchNorm2D<3>,
        cb::Conv2D<3, 2, 3, 1, 1>,
    );
    let mut net = dev.build_module::<Net, f32>();
    let x = dev.tensor_from_vec(xv.clone(), shape);
    let g = weighted(net.forward_mut(x.leaky_trace()))
        .backward()
        .get(&x)
        .as_vec();
    finite_diff_check(
        &xv,
        shape,
        &g,
        |v| {
            let x = dev.tensor_from_vec(v, shape);
            weighted(net.forward_mut(x.leaky_trace())).array()
        },
        "conv-bn-conv",
    );

    // residual block (train mode)
    let mut block = dev.build_module::<cb::BasicBlock<2>, f32>();
    let x = dev.tensor_from_vec(xv.clone(), shape);
    let g = weighted(block.forward_mut(x.leaky_trace()))
        .backward()
        .get(&x)
        .as_vec();
    finite_diff_check(
        &xv,
        shape,
        &g,
        |v| {
            let x = dev.tensor_from_vec(v, shape);
            weighted(block.forward_mut(x.leaky_trace())).array()
        },
        "basic block",
    );

    // downsampling block (train mode): stride 2, 2 -> 4 channels
    let mut down = dev.build_module::<cb::DownsampleBlock<2, 4, 2>, f32>();
    let weighted4 = |y: Tensor<(usize, Const<4>, usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>| {
        let n = y.shape().num_elements();
        let rt = dev.tensor_from_vec(r[..n].to_vec(), *y.shape());
        (y * rt).sum::<Rank0, _>()
    };
    let x = dev.tensor_from_vec(xv.clone(), shape);
    let y = down.forward_mut(x.leaky_trace());
    assert_eq!(*y.shape(), (3, Const::<4>, 3, 3));
    let g = weighted4(y).backward().get(&x).as_vec();
    finite_diff_check(
        &xv,
        shape,
        &g,
        |v| {
            let x = dev.tensor_from_vec(v, shape);
            weighted4(down.forward_mut(x.leaky_trace())).array()
        },
        "downsample block",
    );
}

/// The residual of the fused batch norm may be its own input: both gradient paths add up.
#[test]
fn batch_norm_residual_may_alias_its_input() {
    const C: usize = 2;
    let dev = Cpu::seed_from_u64(70);
    let mut rng = ChaCha8Rng::seed_from_u64(70);
    let shape = (3, Const::<C>, 4, 5);
    let xv = rand_vec(&mut rng, shape.num_elements());
    let bn = dev.build_module::<cb::BatchNorm2D<C>, f32>();
    let run = |aliased: bool| -> Vec<f32> {
        let x = dev.tensor_from_vec(xv.clone(), shape);
        let xt = x.leaky_trace();
        let (res, r) = if aliased {
            (x.leaky_trace(), None)
        } else {
            let r = dev.tensor_from_vec(xv.clone(), shape);
            (r.leaky_trace(), Some(r))
        };
        let mode = BnMode::Eval {
            running_mean: &bn.running_mean,
            running_var: &bn.running_var,
        };
        let y = batch_norm2d(xt, &bn.scale, &bn.bias, mode, 1e-5, Some(res), true).unwrap();
        let grads = y.sum::<Rank0, _>().backward();
        let mut g = grads.get(&x).as_vec();
        if let Some(r) = r {
            g.iter_mut()
                .zip(grads.get(&r).as_vec())
                .for_each(|(a, b)| *a += b);
        }
        g
    };
    assert_close(&run(true), &run(false), 1e-6, "aliased residual");
}

/// Output, input gradient, weight gradient, bias gradient of `L = Σ y ⊙ up` for one
/// batch through our [`Dense`] (`fast`) or dfdx's `Linear`.
fn dense_run<const I: usize, const O: usize>(seed: u64, batch: usize, fast: bool) -> [Vec<f32>; 4] {
    let dev = Cpu::seed_from_u64(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = dev.tensor_from_vec(rand_vec(&mut rng, batch * I), (batch, Const::<I>));
    let up = dev.tensor_from_vec(rand_vec(&mut rng, batch * O), (batch, Const::<O>));
    if fast {
        let m = dev.build_module::<cb::Dense<I, O>, f32>();
        let y = m.forward(x.leaky_trace());
        let out = y.as_vec();
        let g = (y * up).sum().backward();
        [
            out,
            g.get(&x).as_vec(),
            g.get(&m.weight).as_vec(),
            g.get(&m.bias).as_vec(),
        ]
    } else {
        let m = dev.build_module::<Linear<I, O>, f32>();
        let y = m.forward(x.leaky_trace());
        let out = y.as_vec();
        let g = (y * up).sum().backward();
        [
            out,
            g.get(&x).as_vec(),
            g.get(&m.weight).as_vec(),
            g.get(&m.bias).as_vec(),
        ]
    }
}

#[test]
fn dense_is_a_drop_in_for_dfdx_linear() {
    // Same seed → same initial parameters as dfdx's `Linear` (same order and distribution).
    let dev = Cpu::seed_from_u64(3);
    let ours = dev.build_module::<cb::Dense<13, 7>, f32>();
    let dev = Cpu::seed_from_u64(3);
    let theirs = dev.build_module::<Linear<13, 7>, f32>();
    assert_eq!(ours.weight.as_vec(), theirs.weight.as_vec());
    assert_eq!(ours.bias.as_vec(), theirs.bias.as_vec());
    // Forward and all gradients agree, for odd sizes and a batch of one.
    for batch in [1, 5, 37] {
        let a = dense_run::<13, 7>(batch as u64, batch, true);
        let b = dense_run::<13, 7>(batch as u64, batch, false);
        for (what, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(a.iter().zip(&b)) {
            assert_close(a, b, 1e-5, what);
        }
    }
    let a = dense_run::<300, 129>(9, 100, true);
    let b = dense_run::<300, 129>(9, 100, false);
    for (what, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(a.iter().zip(&b)) {
        assert_close(a, b, 1e-4, what);
    }
}

#[test]
fn dense_matches_hand_computation_and_ignores_thread_count() {
    // y = x wᵀ + b by hand; dL/dx = up·w, dL/dw = upᵀ x, dL/db = Σ_rows up.
    let dev: Cpu = Cpu::seed_from_u64(0);
    let x = dev.tensor([[1.0f32, 2.0], [0.0, -1.0]]);
    let w = dev.tensor([[1.0f32, 0.0], [1.0, 1.0], [0.0, 2.0]]);
    let b = dev.tensor([0.5f32, 0.0, -1.0]);
    let y = dense(x.leaky_trace(), &w, Some(&b)).unwrap();
    assert_eq!(y.array(), [[1.5, 3.0, 3.0], [0.5, -1.0, -3.0]]);
    let up = dev.tensor([[1.0f32, 0.0, 1.0], [0.0, 2.0, 0.0]]);
    let grads = (y * up).sum().backward();
    assert_eq!(grads.get(&x).array(), [[1.0, 2.0], [2.0, 2.0]]);
    assert_eq!(grads.get(&w).array(), [[1.0, 2.0], [0.0, -2.0], [1.0, 2.0]]);
    assert_eq!(grads.get(&b).array(), [1.0, 2.0, 1.0]);
    // Large enough for gemm to split the work: bit-identical on 1 and 3 threads.
    let on = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| dense_run::<512, 256>(4, 200, true))
    };
    assert_eq!(on(1), on(3));
}

/// Output, stem weight gradient, block weight gradient, and the input gradient if any, of
/// a small ResNet-like net trained one step (train-mode batch norm) on `threads` threads.
fn stem_run<M>(on_threads: usize, batch: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>)
where
    M: BuildOnDevice<Cpu, f32>,
    M::Built: ModuleMut<
            Tensor<(usize, Const<3>, usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<(usize, Const<8>, usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>,
        > + StemParams,
{
    rayon::ThreadPoolBuilder::new()
        .num_threads(on_threads)
        .build()
        .unwrap()
        .install(|| {
            let dev = Cpu::seed_from_u64(3);
            let mut m = dev.build_module::<M, f32>();
            let x: Tensor<(usize, Const<3>, usize, usize), f32, _> =
                dev.sample_normal_like(&(batch, Const, 19, 17));
            let y = m.forward_mut(x.leaky_trace()); // keeps every gradient, the input's too
            let yv = y.as_vec();
            let grads = (y.square().mean::<Rank0, _>()).backward();
            let (stem, block) = m.params();
            let gx =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grads.get(&x).as_vec()))
                    .ok();
            (yv, grads.get(stem).as_vec(), grads.get(block).as_vec(), gx)
        })
}

/// The stem's and the first block's convolution weights of the nets of `stem_run`.
trait StemParams {
    fn params(
        &self,
    ) -> (
        &Tensor<Rank4<8, 3, 7, 7>, f32, Cpu>,
        &Tensor<Rank4<8, 8, 3, 3>, f32, Cpu>,
    );
}
macro_rules! stem_params {
    ($conv:ident) => {
        impl StemParams
            for (
                $conv<3, 8, 7, 2, 3, f32, Cpu>,
                BatchNormReLU2D<8, f32, Cpu>,
                BasicBlock<8, f32, Cpu>,
            )
        {
            fn params(
                &self,
            ) -> (
                &Tensor<Rank4<8, 3, 7, 7>, f32, Cpu>,
                &Tensor<Rank4<8, 8, 3, 3>, f32, Cpu>,
            ) {
                (&self.0.weight, &self.2.conv1.weight)
            }
        }
    };
}
type StemOnData<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    E,
    D,
> = UnbiasedConv2D<I, O, K, S, P, E, D, false>;
stem_params!(UnbiasedConv2D);
stem_params!(StemOnData);

#[test]
fn on_data_stem_skips_only_the_input_gradient_and_threads_change_no_bit() {
    type Full = (
        cb::UnbiasedConv2D<3, 8, 7, 2, 3>,
        cb::BatchNormReLU2D<8>,
        cb::BasicBlock<8>,
    );
    type OnData = (
        cb::UnbiasedConv2DOnData<3, 8, 7, 2, 3>,
        cb::BatchNormReLU2D<8>,
        cb::BasicBlock<8>,
    );
    // 37 images: more than the backward pass's fixed parts, not a multiple of them.
    let full = stem_run::<Full>(1, 37);
    let data = stem_run::<OnData>(1, 37);
    assert!(
        full.3.is_some(),
        "the plain stem computes the input gradient"
    );
    assert!(
        data.3.is_none(),
        "the stem on data computes no input gradient"
    );
    // Same parameters (same seed and names), same output and parameter gradients, bitwise.
    assert_eq!(full.0, data.0);
    assert_eq!(full.1, data.1);
    assert_eq!(full.2, data.2);
    // Bit-identical on 1, 2 and 3 threads (the weight gradients are summed in fixed parts).
    assert_eq!(stem_run::<Full>(2, 37), full);
    assert_eq!(stem_run::<Full>(3, 37), full);
    assert_eq!(stem_run::<OnData>(3, 37).1, data.1);
}

#[test]
fn conv1d_on_data_has_the_parameter_gradients_of_conv1d() {
    let dev = Cpu::seed_from_u64(9);
    let full = dev.build_module::<cb::Conv1D<6, 4, 3, 1, cb::Same>, f32>();
    let data = dev.build_module::<cb::Conv1DOnData<6, 4, 3, 1, cb::Same>, f32>();
    let data = Conv1D::<6, 4, 3, 1, Same, f32, Cpu, false> {
        weight: full.weight.clone(),
        bias: full.bias.clone(),
        padding: data.padding,
    };
    let x: Tensor<(usize, Const<6>, usize), f32, _> = dev.sample_normal_like(&(5, Const, 13));
    let gf = full
        .forward(x.leaky_trace())
        .square()
        .sum::<Rank0, _>()
        .backward();
    let gd = data
        .forward(x.leaky_trace())
        .square()
        .sum::<Rank0, _>()
        .backward();
    assert_eq!(gf.get(&full.weight).as_vec(), gd.get(&data.weight).as_vec());
    assert_eq!(gf.get(&full.bias).as_vec(), gd.get(&data.bias).as_vec());
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gd.get(&x))).is_err());
    assert_eq!(gf.get(&x).shape(), x.shape());
}

/// `relu` against dfdx's `relu`, bit for bit: values (with exact zeros, `-0.0`, ±∞ and
/// NaN), an input used twice (the gradient accumulates), a broadcast (non-contiguous)
/// input, an output gradient with infinities, and sizes below and above one parallel task.
#[test]
fn relu_is_bit_identical_to_dfdx_relu() {
    let dev: Cpu = Default::default();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    for (seed, n) in [(0u64, 7usize), (1, 1 << 16), (2, 200_003)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = rand_vec(&mut rng, n);
        let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        for (i, s) in specials.into_iter().enumerate() {
            v[(i * 3) % n] = s;
        }
        let mut w = rand_vec(&mut rng, n);
        w[n / 2] = f32::INFINITY; // 0 · ∞ = NaN where x <= 0, as in dfdx
        let x = dev.tensor_from_vec(v, (n,));
        let weights = dev.tensor_from_vec(w, (n,));
        let run = |ours: bool| {
            let y = if ours {
                imle_conv::relu(x.clone()).unwrap()
            } else {
                x.clone().relu()
            };
            let t = x.leaky_trace();
            let y_t = if ours {
                imle_conv::relu(t.with_empty_tape()).unwrap()
            } else {
                t.with_empty_tape().relu()
            };
            let loss = (y_t * weights.clone()).sum() + (t * 0.5).sum();
            let g = loss.backward();
            (y.as_vec(), g.get(&x).as_vec())
        };
        let (want_y, want_g) = run(false);
        let (got_y, got_g) = run(true);
        assert_eq!(bits(got_y), bits(want_y), "forward, n = {n}");
        assert_eq!(bits(got_g), bits(want_g), "backward, n = {n}");
    }
    // A broadcast input: its gradient is summed back over the broadcast axis.
    let row = dev.tensor([-1.0f32, 2.0, 0.0, 3.0]);
    let go = |ours: bool| {
        let t = row.leaky_trace().broadcast::<Rank2<3, 4>, _>();
        let y = if ours { cb::ReLU.forward(t) } else { t.relu() };
        let g = (y * dev.tensor([[1.0f32, 2.0, 3.0, 4.0]; 3]))
            .sum()
            .backward();
        g.get(&row).array()
    };
    assert_eq!(go(true), go(false));
    assert_eq!(go(true), [0.0, 6.0, 0.0, 12.0]);
}
