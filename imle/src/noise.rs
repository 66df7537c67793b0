//! Perturbation noise for perturb-and-MAP (Sec. 3.2).
//!
//! * [`Gumbel`]: Gumbel(0, τ). With i.i.d. Gumbel noise, `argmax(θ + ε)` is an exact sample
//!   of the categorical `softmax(θ/τ)` (the Gumbel-max trick).
//! * [`SumOfGamma`]: SoG(κ, τ, s) of Eq. 13,
//!   `(τ/κ) · (Σ_{i=1..s} Gamma(shape = 1/κ, scale = κ/i) − ln s)`. The sum of κ i.i.d.
//!   SoG samples is Gumbel(0, τ) as s → ∞ (Lemma 1), which makes perturb-and-MAP exact
//!   for k-subsets (Theorem 1). Some public code passes κ/i as a *rate*; that noise does
//!   not sum to a Gumbel. The tests of this crate check the distribution, not the code.
//! * [`Noise`]: one of the above, none (δ₀), or any `rand_distr::Distribution<f32>` of
//!   your own ([`Noise::custom`]), as used by the estimators.
//!
//! Every type implements `rand_distr::Distribution<f32>` and `Distribution<f64>` on the
//! same `rand` 0.8 RNGs that dfdx uses. [`Noise::fill`] draws a whole batch in parallel,
//! deterministically from a seed.

use crate::error::{check_positive, Error, Result};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Open01};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Gumbel(0, τ): `−τ · ln(−ln U)`, `U ~ Uniform(0, 1)`.
///
/// Not `rand_distr::Gumbel`: rand_distr 0.4 draws `U` from `OpenClosed01`, so `U = 1`
/// (probability 2⁻²³ per f32 draw: about three times per epoch of the discrete VAE's
/// 24 M draws) gives `+∞`, which the estimators would reject as non-finite θ + ε; ours
/// draws `U` from the open interval in f64 and is never infinite. Speed, measured by
/// `cargo bench -p imle --bench imle_bench -- gumbel_draw` (see `BENCHMARKS.md`).
///
/// ```
/// use imle::noise::Gumbel;
/// use rand::SeedableRng;
/// use rand_distr::Distribution;
/// let g = Gumbel::new(1.0)?;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let x: f32 = g.sample(&mut rng);
/// assert!(x.is_finite());
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gumbel {
    tau: f64,
}

impl Gumbel {
    /// Gumbel with location 0 and scale `tau > 0`.
    pub fn new(tau: f64) -> Result<Self> {
        check_positive("tau", tau)?;
        Ok(Self { tau })
    }

    /// The scale τ.
    pub fn tau(&self) -> f64 {
        self.tau
    }
}

impl Distribution<f64> for Gumbel {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let u: f64 = rng.sample(Open01);
        -self.tau * (-u.ln()).ln()
    }
}

impl Distribution<f32> for Gumbel {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        Distribution::<f64>::sample(self, rng) as f32
    }
}

/// Sum-of-Gamma noise SoG(κ, τ, s) of Eq. 13.
///
/// ```
/// use imle::noise::SumOfGamma;
/// use rand::SeedableRng;
/// use rand_distr::Distribution;
/// // The paper's choice for k-subsets: κ = k.
/// let sog = SumOfGamma::new(5.0, 1.0, 10)?;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let x: f64 = sog.sample(&mut rng);
/// assert!(x.is_finite());
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SumOfGamma {
    kappa: f64,
    tau: f64,
    s: usize,
    /// Gamma(1/κ, κ/i) for i = 1..=s (the f64 path, rand_distr's sampler).
    gammas: Vec<Gamma<f64>>,
    /// The f32 hot path: one Gamma(1/κ, 1) sampler and the scales κ/i.
    unit_gamma: SmallShapeGamma,
    scales: Vec<f32>,
}

impl PartialEq for SumOfGamma {
    fn eq(&self, other: &Self) -> bool {
        (self.kappa, self.tau, self.s) == (other.kappa, other.tau, other.s)
    }
}

impl SumOfGamma {
    /// SoG with `kappa > 0` (κ = k for k-subsets), temperature `tau > 0` and `s >= 1` terms.
    pub fn new(kappa: f64, tau: f64, s: usize) -> Result<Self> {
        check_positive("kappa", kappa)?;
        check_positive("tau", tau)?;
        if s == 0 {
            return Err(Error::InvalidParameter {
                name: "s",
                value: 0.0,
                reason: "the number of Gamma terms must be >= 1",
            });
        }
        let invalid = |_| Error::InvalidParameter {
            name: "kappa",
            value: kappa,
            reason: "Gamma(1/kappa, kappa/i) is not a valid distribution",
        };
        let gammas = (1..=s)
            .map(|i| Gamma::new(1.0 / kappa, kappa / i as f64))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(invalid)?;
        Ok(Self {
            kappa,
            tau,
            s,
            gammas,
            unit_gamma: SmallShapeGamma::new(1.0 / kappa),
            scales: (1..=s).map(|i| (kappa / i as f64) as f32).collect(),
        })
    }

    /// κ.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }
    /// τ.
    pub fn tau(&self) -> f64 {
        self.tau
    }
    /// s, the number of Gamma terms.
    pub fn s(&self) -> usize {
        self.s
    }
}

impl Distribution<f64> for SumOfGamma {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let sum: f64 = self.gammas.iter().map(|g| g.sample(rng)).sum();
        (self.tau / self.kappa) * (sum - (self.s as f64).ln())
    }
}

/// Computed in f32 with `SmallShapeGamma` (the estimators' hot path); the KS tests
/// check both precisions.
impl Distribution<f32> for SumOfGamma {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let sum: f32 = self
            .scales
            .iter()
            .map(|c| c * self.unit_gamma.sample(rng))
            .sum();
        ((self.tau / self.kappa) as f32) * (sum - (self.s as f32).ln())
    }
}

/// Gamma(a, 1) in f32 by Marsaglia & Tsang (2000), with the boost
/// `Gamma(a) = Gamma(a + 1)·U^{1/a}` for `a < 1`, where `U^{1/a}` is an integer power when
/// `1/a` is an integer (κ = k for k-subsets). This is the textbook algorithm rand_distr
/// uses, specialised so that the SoG hot path avoids `powf` (profiled: the Gamma draws were
/// ~30% of a discrete-VAE training step).
#[derive(Debug, Clone, Copy)]
struct SmallShapeGamma {
    d: f32,
    c: f32,
    /// `Some(1/a)` when `a < 1`.
    boost: Option<f32>,
    /// `1/a` as an integer exponent, when it is one.
    int_power: Option<i32>,
}

impl SmallShapeGamma {
    fn new(shape: f64) -> Self {
        let (alpha, boost) = if shape < 1.0 {
            (shape + 1.0, Some((1.0 / shape) as f32))
        } else {
            (shape, None)
        };
        let d = alpha - 1.0 / 3.0;
        let inv = 1.0 / shape;
        let int_power = (shape < 1.0 && inv.fract() == 0.0 && inv <= 64.0).then_some(inv as i32);
        Self {
            d: d as f32,
            c: (1.0 / (9.0 * d).sqrt()) as f32,
            boost,
            int_power,
        }
    }
}

impl Distribution<f32> for SmallShapeGamma {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let g = loop {
            let x: f32 = rng.sample(rand_distr::StandardNormal);
            let v = 1.0 + self.c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u: f32 = rng.sample(Open01);
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + self.d * (1.0 - v + v.ln()) {
                break self.d * v;
            }
        };
        match (self.boost, self.int_power) {
            (None, _) => g,
            (Some(_), Some(p)) => g * rng.sample::<f32, _>(Open01).powi(p),
            (Some(inv), None) => g * rng.sample::<f32, _>(Open01).powf(inv),
        }
    }
}

/// The perturbation ε of perturb-and-MAP: none, Gumbel, Sum-of-Gamma, or your own.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Noise {
    /// No noise (δ₀): MAP(θ) itself.
    #[default]
    None,
    /// Gumbel(0, τ).
    Gumbel(Gumbel),
    /// SoG(κ, τ, s), Eq. 13.
    SumOfGamma(SumOfGamma),
    /// Any distribution of your own (see [`Noise::custom`]).
    Custom(CustomNoise),
}

type SampleFn = dyn Fn(&mut dyn RngCore) -> f32 + Send + Sync;

/// A user's `rand_distr::Distribution<f32>` as noise of the estimators: see
/// [`Noise::custom`]. Clones share the distribution; two are equal when they share it.
#[derive(Clone)]
pub struct CustomNoise {
    name: String,
    sample: Arc<SampleFn>,
}

impl std::fmt::Debug for CustomNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomNoise({})", self.name)
    }
}

impl PartialEq for CustomNoise {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sample, &other.sample)
    }
}

/// Number of noise values drawn from one RNG stream in [`Noise::fill`].
const FILL_CHUNK: usize = 1024;

impl Noise {
    /// Gumbel(0, τ) noise.
    pub fn gumbel(tau: f64) -> Result<Self> {
        Gumbel::new(tau).map(Noise::Gumbel)
    }

    /// SoG(κ, τ, s) noise (Eq. 13).
    pub fn sum_of_gamma(kappa: f64, tau: f64, s: usize) -> Result<Self> {
        SumOfGamma::new(kappa, tau, s).map(Noise::SumOfGamma)
    }

    /// Noise from any distribution of your own, e.g. a `rand_distr` distribution or
    /// the official discrete-VAE notebook's rate-form Sum-of-Gamma. `name` appears in
    /// `Debug` output. Drawn like every noise by [`Noise::fill`].
    ///
    /// ```
    /// use imle::Noise;
    /// let noise = Noise::custom("Normal(0, 0.5)", rand_distr::Normal::new(0.0f32, 0.5).unwrap());
    /// let mut eps = vec![0.0; 1000];
    /// noise.fill(7, &mut eps);
    /// let mean = eps.iter().sum::<f32>() / 1000.0;
    /// assert!(mean.abs() < 0.1);
    /// ```
    pub fn custom<D>(name: impl Into<String>, dist: D) -> Self
    where
        D: Distribution<f32> + Send + Sync + 'static,
    {
        Noise::Custom(CustomNoise {
            name: name.into(),
            sample: Arc::new(move |rng: &mut dyn RngCore| dist.sample(rng)),
        })
    }

    /// Whether this is the zero perturbation.
    pub fn is_none(&self) -> bool {
        matches!(self, Noise::None)
    }

    /// Fills `out` with i.i.d. noise drawn from `seed`, in parallel.
    ///
    /// The result depends on `seed` and `out.len()` only, not on the number of threads:
    /// chunk `c` of 1024 values is drawn from `ChaCha8Rng` seeded with `seed`, stream `c`.
    pub fn fill(&self, seed: u64, out: &mut [f32]) {
        match self {
            Noise::None => out.fill(0.0),
            Noise::Gumbel(d) => fill_par(d, seed, out),
            Noise::SumOfGamma(d) => fill_par(d, seed, out),
            Noise::Custom(c) => fill_chunks(seed, out, |rng| (c.sample)(rng)),
        }
    }
}

fn fill_par<D: Distribution<f32> + Sync>(dist: &D, seed: u64, out: &mut [f32]) {
    fill_chunks(seed, out, |rng| dist.sample(rng))
}

/// Fills `out` in parallel chunks of 1024 values, chunk `c` from `ChaCha8Rng` seeded with
/// `seed`, stream `c`: the result does not depend on the number of threads.
/// (`inline(always)`: the per-draw closure stays inlined in every fill.)
#[inline(always)]
pub(crate) fn fill_chunks(
    seed: u64,
    out: &mut [f32],
    draw: impl Fn(&mut ChaCha8Rng) -> f32 + Sync,
) {
    out.par_chunks_mut(FILL_CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(c as u64);
            for v in chunk {
                *v = draw(&mut rng);
            }
        });
}

impl Distribution<f64> for Noise {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Noise::None => 0.0,
            Noise::Gumbel(d) => d.sample(rng),
            Noise::SumOfGamma(d) => d.sample(rng),
            Noise::Custom(c) => (c.sample)(&mut &mut *rng) as f64,
        }
    }
}

impl Distribution<f32> for Noise {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        Distribution::<f64>::sample(self, rng) as f32
    }
}

/// The seed with which call number `call` of an op seeded with `seed` draws its noise
/// (a SplitMix64 mix of the two). Exposed so that tests and experiments can reproduce an
/// op's noise, e.g. for common random numbers.
pub fn call_seed(seed: u64, call: u64) -> u64 {
    crate::seed::mix(seed, call, 0x2545_F491_4F6C_DD1D)
}

/// A seed and a call counter shared by clones of an op.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seeds {
    seed: u64,
    calls: Arc<AtomicU64>,
}

impl Seeds {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The noise seed of the next call.
    pub(crate) fn next(&self) -> u64 {
        call_seed(self.seed, self.calls.fetch_add(1, Ordering::Relaxed))
    }

    /// The seed.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// The number of calls so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Continues at call `calls`.
    pub(crate) fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::Relaxed)
    }
}
