//! The discrete k-subset VAE of Sec. 6 (Figure 4) on MNIST.
//!
//! # Protocol (defaults = the official TensorFlow notebook)
//! * **Model.** Encoder 784-512-256-400 (ReLU) → 20 blocks of 20 logits θ; a latent
//!   10-subset per block (top-k, k = 10; the "GSMT" baseline uses a 1-of-20 categorical);
//!   decoder 400-256-512-784 (ReLU) → Bernoulli logits. Keras' initialisation:
//!   Glorot-uniform weights, zero biases.
//! * **Data.** MNIST pixels `/255` in `[0, 1]`, **not binarised**, used directly as the
//!   BCE labels.
//! * **Loss** ([`vae_loss`]), per example, averaged over the batch:
//!   `Σ_784 pixels BCE_logits(x̂, x) + Σ_20 blocks Σ_20 categories q·(ln(q + 1e-20) − ln(1/20))`,
//!   `q = softmax(θ_block)`: the KL between each block's categorical and the uniform
//!   distribution, also for the 10-subset (as in the official code).
//! * **Optimiser.** Adam, lr 1e-3, β = (0.9, 0.999), ε = 1e-7 (Keras' default), batch 100,
//!   100 epochs; [`crate::train::Optimiser`] (dfdx's arithmetic, checkpointable state).
//! * **I-MLE** (`imle-sog`): PID target θ' = θ − λ·∂L/∂z with λ = 10, SoG(κ = 10, τ = 10,
//!   s = 10) noise reused for the target, S = 1 sample, gradient (z − z')/λ.
//!   `imle-gumbel` uses Gumbel(0, 1) noise instead. Our SoG is Eq. 13 with Gamma *scale*
//!   κ/i (the official notebook passes κ/i as a TensorFlow *rate*; see PAPER-NOTES).
//! * **GSMT**: 1-of-20 per block, relaxed sample `softmax((θ + g)/t)`, g ~ Gumbel(0, 1),
//!   trained *and tested* with the relaxed sample at the current temperature (the
//!   official code's `hard=False`); temperature per epoch `t_e = max(t_{e−1}·exp(−3e-4·e), 0.5)`,
//!   `t_0 = 1` (the official schedule; it reaches 0.5 at epoch 68).
//! * **Test loss**: the mean over the batches of 100 of the full 10,000-image test set of
//!   the loss with a *noisy* sample (no MAP at test time), as the official code.
//!   The train loss we record is the mean over the epoch's batches (the official code
//!   prints the last batch's).
//! * **Determinism.** One run seed; the weights, each epoch's shuffle and every noise
//!   draw (train step `i` of epoch `e`, test batch `j` after epoch `e`) come from seeds
//!   derived from it, so a run resumed from a checkpoint is identical to an uninterrupted
//!   one (AIMLE included: its β and running fraction are checkpointed).

pub mod device;
pub mod latent;
pub mod model;
pub mod train;

pub use crate::train::EpochRecord;
pub use device::Backend;
pub use latent::{Latent, LatentConfig, Method};
pub use model::{build, vae_loss, vae_loss_f64, VaeModel};
pub use train::{Vae, VaeConfig};
