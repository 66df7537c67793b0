//! The discrete VAE's networks, parameter access and the loss (official code's formula).

use dfdx::prelude::*;
use imle_conv::builders::{Dense, DenseOnData, ReLU};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Pixels per image.
pub const PIXELS: usize = 784;
/// Number of latent blocks N.
pub const BLOCKS: usize = 20;
/// Categories per block M.
pub const CATS: usize = 20;
/// Latent size N·M.
pub const LATENT: usize = BLOCKS * CATS;
/// Number of parameter tensors (6 linear layers × weight, bias).
pub const N_PARAMS: usize = 12;

/// Encoder 784-512-256-400 (ReLU): 20 blocks of 20 logits. The layers are `imle_conv`'s
/// `Dense` (dfdx's `Linear` with AVX-512 matrix products, about 2x faster here) and `ReLU`
/// (dfdx's numbers, vectorised); the first takes the images, so it computes no input
/// gradient (`DenseOnData`).
pub type EncoderSpec = (
    DenseOnData<PIXELS, 512>,
    ReLU,
    Dense<512, 256>,
    ReLU,
    Dense<256, LATENT>,
);
/// Decoder 400-256-512-784 (ReLU): Bernoulli logits of the 784 pixels.
pub type DecoderSpec = (
    Dense<LATENT, 256>,
    ReLU,
    Dense<256, 512>,
    ReLU,
    Dense<512, PIXELS>,
);
/// Encoder and decoder.
pub type VaeSpec = (EncoderSpec, DecoderSpec);
/// The built model: `.0` encoder, `.1` decoder.
pub type VaeModel = <VaeSpec as BuildOnDevice<Cpu, f32>>::Built;

/// One parameter tensor, seen as a flat vector.
pub trait Param {
    /// Number of values.
    fn numel(&self) -> usize;
    /// The values, row-major.
    fn values(&self) -> Vec<f32>;
    /// Overwrites the values.
    fn set(&mut self, v: &[f32]);
    /// Copies the values into `buf` (of length [`Param::numel`]).
    fn values_into(&self, buf: &mut [f32]);
    /// Its gradient in `grads`, read in place.
    fn grad<'a>(&self, grads: &'a mut Gradients<f32, Cpu>) -> Result<&'a [f32], CpuError>;
    /// Writes `values` as its gradient in `grads`.
    fn set_grad(&self, grads: &mut Gradients<f32, Cpu>, values: &[f32]) -> Result<(), CpuError>;
}

impl<S: Shape> Param for Tensor<S, f32, Cpu> {
    fn numel(&self) -> usize {
        self.shape().num_elements()
    }
    fn values(&self) -> Vec<f32> {
        self.as_vec()
    }
    fn set(&mut self, v: &[f32]) {
        self.copy_from(v);
    }
    fn values_into(&self, buf: &mut [f32]) {
        self.copy_into(buf);
    }
    fn grad<'a>(&self, grads: &'a mut Gradients<f32, Cpu>) -> Result<&'a [f32], CpuError> {
        // Every parameter of the VAE is on the path to the loss, so it has a gradient
        // (zeros would be allocated otherwise).
        Ok(grads.get_or_alloc_mut(self)?.as_slice())
    }
    fn set_grad(&self, grads: &mut Gradients<f32, Cpu>, values: &[f32]) -> Result<(), CpuError> {
        let g = grads.get_or_alloc_mut(self)?;
        if g.len() != values.len() {
            return Err(CpuError::WrongNumElements);
        }
        g.copy_from_slice(values);
        Ok(())
    }
}

/// The 12 parameter tensors of a VAE model (any layer type with `weight` and `bias`),
/// as an array of `&` or `&mut` references: encoder layers 1-3 (weight, bias), then
/// decoder layers 1-3. `vae_tensors!(&model, &)` / `vae_tensors!(&mut model, &mut)`.
macro_rules! vae_tensors {
    ($model:expr, $($r:tt)+) => {{
        let (e, d) = $model;
        [
            $($r)+ e.0.weight,
            $($r)+ e.0.bias,
            $($r)+ e.2.weight,
            $($r)+ e.2.bias,
            $($r)+ e.4.weight,
            $($r)+ e.4.bias,
            $($r)+ d.0.weight,
            $($r)+ d.0.bias,
            $($r)+ d.2.weight,
            $($r)+ d.2.bias,
            $($r)+ d.4.weight,
            $($r)+ d.4.bias,
        ]
    }};
}
pub(crate) use vae_tensors;

/// The 12 parameter tensors, in `vae_tensors` order.
pub fn params(m: &VaeModel) -> [&dyn Param; N_PARAMS] {
    vae_tensors!(m, &)
}

/// Mutable access to the 12 parameter tensors, in [`params`] order.
pub fn params_mut(m: &mut VaeModel) -> [&mut dyn Param; N_PARAMS] {
    vae_tensors!(m, &mut)
}

/// All parameters concatenated, in [`params`] order.
pub fn flat_params(m: &VaeModel) -> Vec<f32> {
    params(m).iter().flat_map(|p| p.values()).collect()
}

/// Builds the VAE with Keras' default initialisation (as the official TensorFlow code):
/// Glorot-uniform weights, `U(-sqrt(6/(fan_in+fan_out)), +...)`, and zero biases, drawn
/// from ChaCha8 seeded with `seed` (dfdx's own init would use its device RNG).
pub fn build(dev: &Cpu, seed: u64) -> VaeModel {
    let mut m = dev.build_module::<VaeSpec, f32>();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in params_mut(&mut m) {
        let n = p.numel();
        let is_bias = [512, 256, LATENT, PIXELS].contains(&n);
        if is_bias {
            p.set(&vec![0.0; n]);
        } else {
            // Weight shapes (out, in): fan_in + fan_out from the known layer sizes.
            let (fan_in, fan_out) = match n {
                x if x == PIXELS * 512 => (PIXELS, 512),
                x if x == 512 * 256 => (512, 256),
                x if x == 256 * LATENT => (256, LATENT),
                _ => unreachable!("unknown weight size {n}"),
            };
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            let w: Vec<f32> = (0..n).map(|_| rng.gen_range(-limit..limit)).collect();
            p.set(&w);
        }
    }
    m
}

/// The loss of the official discrete-VAE code, per example averaged over the batch:
///
/// ```text
/// loss = (1/B) Σ_b [ Σ_pixels BCE(x_logits, x)  +  Σ_blocks Σ_categories q (ln(q + 1e-20) − ln(1/M)) ]
/// BCE(l, x) = max(l, 0) − l·x + ln(1 + e^{−|l|})     (sigmoid cross-entropy, x ∈ [0, 1])
/// q = softmax of each block's M logits
/// ```
///
/// (the KL between each block's categorical `q` and the uniform distribution, used for the
/// k-subset latent too, as in the official code). Returns the loss tensor (on the tape)
/// and the values of its two terms `(reconstruction, kl)`.
pub fn vae_loss<P: Dim, N: Dim, M: Dim, D: Device<f32>, T: Tape<f32, D>>(
    x_logits: Tensor<(usize, P), f32, D, T>,
    x: &Tensor<(usize, P), f32, D>,
    logits: Tensor<(usize, N, M), f32, D, T>,
) -> (Tensor<(), f32, D, T>, f32, f32) {
    let b = x_logits.shape().0 as f32;
    let m = logits.shape().2.size() as f32;
    let recon = x_logits.bce_with_logits(x.clone()).sum::<(), _>() / b;
    let q = logits.softmax::<Axis<2>>();
    let q_branch = q.retaped::<T>();
    let log_q = (q + 1e-20).ln();
    let kl = ((log_q - (1.0 / m).ln()) * q_branch).sum::<(), _>() / b;
    let (r, k) = (recon.as_vec()[0], kl.as_vec()[0]);
    (recon + kl, r, k)
}

/// [`vae_loss`] on the host `Cpu`, each term one fused pass (parallel over images) that
/// computes the value and its gradient together, instead of dfdx's chain of element-wise
/// ops and their tapes (the same formula; sums in f64, so the value differs from the
/// chain's f32 sums by rounding only; tested against it). Deterministic for any thread
/// count: per-image sums, added in image order.
///
/// ```text
/// ∂/∂l BCE(l, x) = (sigmoid(l) − x) / B
/// ∂/∂z_j KL      = q_j (g_j − Σ_i q_i g_i) / B,   g_i = ln(q_i + 1e-20) − ln(1/M) + q_i / (q_i + 1e-20)
/// ```
#[allow(clippy::type_complexity)] // (loss tensor, reconstruction, KL), as `vae_loss`
pub fn vae_loss_host<T: Tape<f32, Cpu> + Merge<T>>(
    x_logits: Tensor<(usize, Const<PIXELS>), f32, Cpu, T>,
    x: &[f32],
    logits: Tensor<(usize, Const<BLOCKS>, Const<CATS>), f32, Cpu, T>,
    errors: &imle::op::BackwardErrors,
) -> imle::Result<(Tensor<(), f32, Cpu, T>, f32, f32)> {
    use rayon::prelude::*;
    let b = x_logits.shape().0;
    let inv_b = 1.0 / b as f64;
    // reconstruction: Σ BCE with logits, and its gradient
    let l = x_logits.as_vec();
    let mut g_rec = vec![0.0f32; l.len()];
    let per_image: Vec<f64> = l
        .par_chunks(PIXELS)
        .zip(x.par_chunks(PIXELS))
        .zip(g_rec.par_chunks_mut(PIXELS))
        .map(|((l, x), g)| {
            let mut sum = 0.0f64;
            for ((&l, &t), g) in l.iter().zip(x).zip(g) {
                // ln(1 + e) with e in (0, 1]: `ln` (not `ln_1p`, several times slower
                // here) loses at most e < 2^-24 when 1 + e rounds to 1
                let e = (-l.abs()).exp();
                sum += (l.max(0.0) - l * t + (1.0 + e).ln()) as f64;
                let sig = if l >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                };
                *g = ((sig - t) as f64 * inv_b) as f32;
            }
            sum
        })
        .collect();
    let recon = (per_image.iter().sum::<f64>() * inv_b) as f32;
    let recon_t = imle::op::custom_op(
        x_logits,
        (),
        vec![recon],
        move |g: &[f32]| Ok(g_rec.iter().map(|v| v * g[0]).collect()),
        errors,
    )?;
    // KL of each block's softmax to the uniform distribution, and its gradient
    let z = logits.as_vec();
    let ln_m = (CATS as f64).ln();
    let mut g_kl = vec![0.0f32; z.len()];
    let per_image: Vec<f64> = z
        .par_chunks(LATENT)
        .zip(g_kl.par_chunks_mut(LATENT))
        .map(|(z, g)| {
            let mut sum = 0.0f64;
            for (z, g) in z.chunks_exact(CATS).zip(g.chunks_exact_mut(CATS)) {
                let mx = z.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let mut q = [0.0f32; CATS];
                let mut total = 0.0f32;
                for (q, &v) in q.iter_mut().zip(z) {
                    *q = (v - mx).exp();
                    total += *q;
                }
                let mut gq = [0.0f64; CATS];
                let mut dot = 0.0f64;
                for (q, gq) in q.iter_mut().zip(gq.iter_mut()) {
                    *q /= total;
                    let qd = *q as f64;
                    let lq = ((*q + 1e-20).ln() as f64) + ln_m;
                    sum += qd * lq;
                    *gq = lq + qd / (qd + 1e-20);
                    dot += qd * *gq;
                }
                for ((g, &q), gq) in g.iter_mut().zip(&q).zip(gq) {
                    *g = (q as f64 * (gq - dot) * inv_b) as f32;
                }
            }
            sum
        })
        .collect();
    let kl = (per_image.iter().sum::<f64>() * inv_b) as f32;
    let kl_t = imle::op::custom_op(
        logits,
        (),
        vec![kl],
        move |g: &[f32]| Ok(g_kl.iter().map(|v| v * g[0]).collect()),
        errors,
    )?;
    Ok((recon_t + kl_t, recon, kl))
}

/// Reference implementation of [`vae_loss`] in f64 on plain slices (for tests):
/// `x_logits`, `x` row-major `(b, p)`; `logits` row-major `(b, n·m)`.
pub fn vae_loss_f64(x_logits: &[f32], x: &[f32], logits: &[f32], b: usize, m: usize) -> (f64, f64) {
    let mut recon = 0.0;
    for (&l, &t) in x_logits.iter().zip(x) {
        let (l, t) = (l as f64, t as f64);
        recon += l.max(0.0) - l * t + (-l.abs()).exp().ln_1p();
    }
    let mut kl = 0.0;
    for block in logits.chunks(m) {
        let mx = block.iter().fold(f64::MIN, |a, &v| a.max(v as f64));
        let z: f64 = block.iter().map(|&v| (v as f64 - mx).exp()).sum();
        for &v in block {
            let q = (v as f64 - mx).exp() / z;
            kl += q * ((q + 1e-20).ln() - (1.0 / m as f64).ln());
        }
    }
    (recon / b as f64, kl / b as f64)
}

/// Sigmoid, for turning decoder logits into pixel probabilities.
pub fn sigmoid(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect()
}

/// Mean loss parts over batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossParts {
    /// Total.
    pub loss: f64,
    /// Reconstruction.
    pub recon: f64,
    /// KL.
    pub kl: f64,
}

impl LossParts {
    /// The parts as named metrics (`loss`, `recon`, `kl`).
    pub fn metrics(&self) -> crate::train::Metrics {
        crate::train::Metrics::from([
            ("loss".to_string(), self.loss),
            ("recon".to_string(), self.recon),
            ("kl".to_string(), self.kl),
        ])
    }

    /// The mean of per-batch parts (summed in order, then divided).
    pub(crate) fn mean(parts: &[LossParts]) -> LossParts {
        let k = parts.len() as f64;
        let sum = |f: fn(&LossParts) -> f64| parts.iter().map(f).sum::<f64>() / k;
        LossParts {
            loss: sum(|p| p.loss),
            recon: sum(|p| p.recon),
            kl: sum(|p| p.kl),
        }
    }
}
