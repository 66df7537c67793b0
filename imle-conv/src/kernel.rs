//! CPU kernels on plain `f32` slices in NCHW layout: im2col / col2im and the
//! convolution forward / backward passes built from them.
//!
//! A 1-d convolution is a 2-d one with `h = kh = sh = 1` and no vertical padding, so
//! every kernel here serves both.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::buffers::Buf;
use crate::gemm::sgemm;
use crate::geom::Geom;
use crate::winograd::{WinoScratch, Winograd};

/// Unfold one image `x[c, h, w]` into `col[(c, ky, kx), (oy, ox)]`.
///
/// With a horizontal stride of 2 (the ResNet stem) each input row is first split into its
/// even and odd columns, so that every run of the matrix is a contiguous copy.
#[multiversion(targets = "simd")]
pub(crate) fn im2col(x: &[f32], g: &Geom, col: &mut [f32]) {
    let p = g.p();
    let half = g.w.div_ceil(2);
    // even columns of every row, then odd columns of every row (stride-2 case only)
    let mut split = if g.sw == 2 {
        vec![0.0f32; 2 * g.h * half]
    } else {
        Vec::new()
    };
    for c in 0..g.c {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        if g.sw == 2 {
            let (even, odd) = split.split_at_mut(g.h * half);
            for (iy, row) in xc.chunks_exact(g.w).enumerate() {
                let (e, o) = (
                    &mut even[iy * half..][..half],
                    &mut odd[iy * half..][..half],
                );
                for (j, pair) in row.chunks(2).enumerate() {
                    e[j] = pair[0];
                    if let Some(&v) = pair.get(1) {
                        o[j] = v;
                    }
                }
            }
        }
        for ky in 0..g.kh {
            let (ylo, yhi) = g.valid_rows(ky);
            for kx in 0..g.kw {
                let row = &mut col[((c * g.kh + ky) * g.kw + kx) * p..][..p];
                let (xlo, xhi) = g.valid_cols(kx);
                row[..ylo * g.ow].fill(0.0);
                row[yhi * g.ow..].fill(0.0);
                for oy in ylo..yhi {
                    let iy = oy * g.sh + ky - g.ph;
                    let xrow = &xc[iy * g.w..(iy + 1) * g.w];
                    let out = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    out[..xlo].fill(0.0);
                    out[xhi..].fill(0.0);
                    if xlo < xhi {
                        let (start, n) = (xlo * g.sw + kx - g.pw, xhi - xlo);
                        match g.sw {
                            1 => out[xlo..xhi].copy_from_slice(&xrow[start..start + n]),
                            2 => {
                                // input columns start, start + 2, ...: one parity, contiguous
                                let at = (start % 2) * g.h * half + iy * half + start / 2;
                                out[xlo..xhi].copy_from_slice(&split[at..at + n]);
                            }
                            _ => {
                                for (o, i) in out[xlo..xhi].iter_mut().zip((start..).step_by(g.sw))
                                {
                                    *o = xrow[i];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Fold `col[(c, ky, kx), (oy, ox)]` back into one image, adding into `x[c, h, w]`.
#[multiversion(targets = "simd")]
pub(crate) fn col2im_add(col: &[f32], g: &Geom, x: &mut [f32]) {
    let p = g.p();
    for c in 0..g.c {
        let xc = &mut x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            let (ylo, yhi) = g.valid_rows(ky);
            for kx in 0..g.kw {
                let row = &col[((c * g.kh + ky) * g.kw + kx) * p..][..p];
                let (xlo, xhi) = g.valid_cols(kx);
                if xlo >= xhi {
                    continue;
                }
                for oy in ylo..yhi {
                    let iy = oy * g.sh + ky - g.ph;
                    let xrow = &mut xc[iy * g.w..(iy + 1) * g.w];
                    let src = &row[oy * g.ow + xlo..oy * g.ow + xhi];
                    let start = xlo * g.sw + kx - g.pw;
                    if g.sw == 1 {
                        for (o, v) in xrow[start..start + src.len()].iter_mut().zip(src) {
                            *o += v;
                        }
                    } else {
                        for (v, i) in src.iter().zip((start..).step_by(g.sw)) {
                            xrow[i] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Whether to parallelise over the batch (else inside each GEMM).
fn batch_parallel(batch: usize) -> bool {
    batch >= rayon::current_num_threads()
}

/// Scratch buffers of one thread.
#[derive(Default)]
struct Scratch {
    /// im2col matrix.
    col: Buf,
    /// Input-gradient columns.
    dcol: Buf,
    /// Buffers of the Winograd path.
    wino: WinoScratch,
}

/// Convolution forward: `out[b, o, oy, ox] = bias[o] + sum w[o, c, ky, kx] x[b, c, iy, ix]`.
///
/// `x` is `[batch, c, h, w]`, `w` is `[o, c, kh, kw]`, `out` is `[batch, o, oh, ow]`.
/// Stride-1 3x3 and 3-tap 1-d convolutions use Winograd's F(2, 3) ([`Winograd`]), the
/// others im2col + one GEMM per image.
pub(crate) fn conv_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    o: usize,
    g: &Geom,
) {
    let (chw, ckk, p) = (g.chw(), g.ckk(), g.p());
    let wino = Winograd::of(g).map(|wg| (wg, wg.kernel(w, o, g.c)));
    let one = |x_b: &[f32], out_b: &mut [f32], s: &mut Scratch, par: bool| {
        if let Some((wg, u)) = &wino {
            return wg.forward(x_b, u, bias, out_b, o, g, &mut s.wino, par);
        }
        if let Some(bias) = bias {
            for (row, &bv) in out_b.chunks_exact_mut(p).zip(bias) {
                row.fill(bv);
            }
        }
        let colm: &[f32] = if g.is_identity() {
            x_b
        } else {
            s.col.resize_uninit(ckk * p);
            im2col(x_b, g, &mut s.col);
            &s.col
        };
        sgemm(
            (o, p, ckk),
            w,
            (ckk, 1),
            colm,
            (p, 1),
            out_b,
            p,
            bias.is_some(),
            par,
        );
    };
    if batch_parallel(out.len() / (o * p).max(1)) {
        out.par_chunks_mut(o * p)
            .zip(x.par_chunks(chw))
            .for_each_init(Scratch::default, |s, (out_b, x_b)| {
                one(x_b, out_b, s, false)
            });
    } else {
        let mut s = Scratch::default();
        for (out_b, x_b) in out.chunks_mut(o * p).zip(x.chunks(chw)) {
            one(x_b, out_b, &mut s, true);
        }
    }
}

/// The images of a batch whose weight gradients one accumulator sums, in order: a fixed
/// split of the batch (at most [`GRAD_CHUNKS`] parts), so that the summation order, and
/// with it every bit of the weight gradient, does not depend on the thread count.
fn images_per_chunk(batch: usize) -> usize {
    batch.div_ceil(GRAD_CHUNKS).max(1)
}

/// Number of parts the backward pass splits a batch into (each part's weight gradient is
/// summed in image order, the parts' sums then added in part order).
const GRAD_CHUNKS: usize = 16;

/// Convolution backward. Adds into `gx` (if given), `gw` and `gb` (if given).
///
/// Bit-identical for any number of threads: the batch is split into fixed parts
/// ([`images_per_chunk`]) whose weight and bias gradients are added in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward(
    x: &[f32],
    w: &[f32],
    gout: &[f32],
    gx: Option<&mut [f32]>,
    gw: &mut [f32],
    mut gb: Option<&mut [f32]>,
    o: usize,
    g: &Geom,
) {
    let (chw, ckk, p) = (g.chw(), g.ckk(), g.p());
    let batch = gout.len() / (o * p).max(1);
    if batch == 0 {
        return;
    }
    let want_gb = gb.is_some();
    let wino = Winograd::of(g).map(|wg| (wg, wg.kernel(w, o, g.c)));
    let gw_len = wino
        .as_ref()
        .map_or(o * ckk, |(wg, _)| wg.comps() * o * g.c);

    /// Weight and bias gradients of one part of the batch, with its scratch buffers.
    struct Acc {
        /// `[o, ckk]`, or `[ξ, o, c]` in the Winograd domain.
        gw: Vec<f32>,
        gb: Vec<f32>,
        s: Scratch,
    }
    // One image: weight / bias gradients into `acc`, input gradient into `gx_b`.
    let one = |acc: &mut Acc, x_b: &[f32], gout_b: &[f32], gx_b: Option<&mut [f32]>, par: bool| {
        if want_gb {
            for (s, row) in acc.gb.iter_mut().zip(gout_b.chunks_exact(p)) {
                *s += row.iter().sum::<f32>();
            }
        }
        if let Some((wg, u)) = &wino {
            return wg.backward(
                x_b,
                u,
                gout_b,
                gx_b,
                &mut acc.gw,
                o,
                g,
                &mut acc.s.wino,
                par,
            );
        }
        let colm: &[f32] = if g.is_identity() {
            x_b
        } else {
            acc.s.col.resize_uninit(ckk * p);
            im2col(x_b, g, &mut acc.s.col);
            &acc.s.col
        };
        // gw[o, ckk] += gout[o, p] * col[ckk, p]^T
        sgemm(
            (o, ckk, p),
            gout_b,
            (p, 1),
            colm,
            (1, p),
            &mut acc.gw,
            ckk,
            true,
            par,
        );
        if let Some(gx_b) = gx_b {
            // dcol[ckk, p] = w[o, ckk]^T * gout[o, p]
            if g.is_identity() {
                sgemm((ckk, p, o), w, (1, ckk), gout_b, (p, 1), gx_b, p, true, par);
            } else {
                acc.s.dcol.resize_uninit(ckk * p);
                sgemm(
                    (ckk, p, o),
                    w,
                    (1, ckk),
                    gout_b,
                    (p, 1),
                    &mut acc.s.dcol,
                    p,
                    false,
                    par,
                );
                col2im_add(&acc.s.dcol, g, gx_b);
            }
        }
    };
    let per = images_per_chunk(batch);
    let parts = batch.div_ceil(per);
    let par_inside = parts < rayon::current_num_threads();
    let part = |x_c: &[f32], go_c: &[f32], gx_c: Option<&mut [f32]>| {
        let mut acc = Acc {
            gw: vec![0.0; gw_len],
            gb: vec![0.0; if want_gb { o } else { 0 }],
            s: Scratch::default(),
        };
        match gx_c {
            Some(gx_c) => {
                for (gx_b, (x_b, go_b)) in gx_c
                    .chunks_mut(chw)
                    .zip(x_c.chunks(chw).zip(go_c.chunks(o * p)))
                {
                    one(&mut acc, x_b, go_b, Some(gx_b), par_inside);
                }
            }
            None => {
                for (x_b, go_b) in x_c.chunks(chw).zip(go_c.chunks(o * p)) {
                    one(&mut acc, x_b, go_b, None, par_inside);
                }
            }
        }
        (acc.gw, acc.gb)
    };
    let sums: Vec<(Vec<f32>, Vec<f32>)> = match gx {
        Some(gx) => gx
            .par_chunks_mut(chw * per)
            .zip(x.par_chunks(chw * per).zip(gout.par_chunks(o * p * per)))
            .map(|(gx_c, (x_c, go_c))| part(x_c, go_c, Some(gx_c)))
            .collect(),
        None => x
            .par_chunks(chw * per)
            .zip(gout.par_chunks(o * p * per))
            .map(|(x_c, go_c)| part(x_c, go_c, None))
            .collect(),
    };
    let mut total = vec![0.0; gw_len];
    for (sgw, sgb) in &sums {
        total.iter_mut().zip(sgw).for_each(|(s, v)| *s += v);
        if let Some(gb) = gb.as_deref_mut() {
            gb.iter_mut().zip(sgb).for_each(|(s, v)| *s += v);
        }
    }
    match &wino {
        Some((wg, _)) => wg.kernel_t(&total, o, g.c, gw),
        None => gw.iter_mut().zip(&total).for_each(|(s, v)| *s += v),
    }
}
