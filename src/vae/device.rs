//! The VAE's forward and backward passes on any dfdx device (`--device cuda`).
//!
//! The host model (`imle_conv::Dense` layers, our checkpointable Adam) stays the state of
//! a run; a [`DeviceVae`] mirrors it with dfdx's own `Linear` layers (the same weight
//! layout) on the device, computes the loss and its gradients there (the I-MLE op runs
//! through [`imle::ImleDevice`]: one host round trip per pass for the top-k), and hands
//! the gradients back to the host Adam. Checkpoints, resume and seeds are therefore the
//! same as on the Cpu; per step the 12 parameter tensors go to the device and their
//! gradients come back (1.3 M floats each way).

use super::latent::Latent;
use super::model::{
    params, vae_loss, vae_tensors, LossParts, VaeModel, BLOCKS, CATS, LATENT, N_PARAMS, PIXELS,
};
use anyhow::{bail, Result};
use dfdx::prelude::*;
use imle::ImleDevice;

/// Encoder with dfdx's `Linear` (the layout of [`super::model::EncoderSpec`]).
pub type LinearEncoder = (
    Linear<PIXELS, 512>,
    ReLU,
    Linear<512, 256>,
    ReLU,
    Linear<256, LATENT>,
);
/// Decoder with dfdx's `Linear`.
pub type LinearDecoder = (
    Linear<LATENT, 256>,
    ReLU,
    Linear<256, 512>,
    ReLU,
    Linear<512, PIXELS>,
);
type Built<D> = <(LinearEncoder, LinearDecoder) as BuildOnDevice<D, f32>>::Built;

/// Where the VAE's passes run.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The host, with `imle_conv::Dense` (the default; fastest on a CPU).
    #[default]
    Cpu,
    /// The host through dfdx's `Linear` and the device-generic path (a check of that path).
    DfdxCpu,
    /// dfdx's `Cuda` device (needs a binary built with `--features cuda`).
    Cuda,
}

impl Backend {
    /// An error if this binary cannot run `self` (cuda without the `cuda` feature).
    pub fn check_available(self) -> Result<()> {
        if self == Backend::Cuda && !cfg!(feature = "cuda") {
            bail!(
                "--device cuda needs a binary built with the `cuda` feature \
                 (cargo run --release --features cuda -- fig4 --device cuda)"
            );
        }
        Ok(())
    }
}

/// The passes of one backend: loss parts and, for training, the 12 gradients in
/// [`params`] order.
pub trait Passes {
    /// Copies the host parameters to the device.
    fn load(&mut self, host: &VaeModel) -> Result<()>;
    /// The loss of a batch, and its gradients if `train`.
    fn run(
        &self,
        latent: &Latent,
        x: Vec<f32>,
        seed: u64,
        temperature: f32,
        train: bool,
    ) -> Result<(LossParts, Option<Vec<Vec<f32>>>)>;
}

/// The mirror of the VAE on device `D`.
pub struct DeviceVae<D: ImleDevice + DeviceBuildExt> {
    dev: D,
    model: Built<D>,
}

impl<D: ImleDevice + DeviceBuildExt> DeviceVae<D> {
    /// A mirror on `dev` (weights set by [`Passes::load`]).
    pub fn new(dev: D) -> Self {
        let model = dev.build_module::<(LinearEncoder, LinearDecoder), f32>();
        Self { dev, model }
    }

    fn tensors_mut(&mut self) -> [&mut dyn DeviceParam<D>; N_PARAMS] {
        vae_tensors!(&mut self.model, &mut)
    }

    fn grads_of(&self, grads: &Gradients<f32, D>) -> Vec<Vec<f32>> {
        let tensors: [&dyn DeviceParam<D>; N_PARAMS] = vae_tensors!(&self.model, &);
        tensors.iter().map(|t| t.grad_values(grads)).collect()
    }
}

/// A parameter tensor on device `D`: host values can be copied in, its gradient out.
trait DeviceParam<D: ImleDevice> {
    fn copy_in(&mut self, values: &[f32]) -> Result<()>;
    fn grad_values(&self, grads: &Gradients<f32, D>) -> Vec<f32>;
}

impl<S: Shape, D: ImleDevice> DeviceParam<D> for Tensor<S, f32, D> {
    fn grad_values(&self, grads: &Gradients<f32, D>) -> Vec<f32> {
        grads.get(self).as_vec()
    }

    fn copy_in(&mut self, values: &[f32]) -> Result<()> {
        if values.len() != self.shape().num_elements() {
            bail!(
                "parameter of {} values, got {}",
                self.shape().num_elements(),
                values.len()
            );
        }
        self.copy_from(values);
        Ok(())
    }
}

impl<D: ImleDevice + DeviceBuildExt> Passes for DeviceVae<D> {
    fn load(&mut self, host: &VaeModel) -> Result<()> {
        let values: Vec<Vec<f32>> = params(host).iter().map(|p| p.values()).collect();
        for (t, v) in self.tensors_mut().into_iter().zip(&values) {
            t.copy_in(v)?;
        }
        Ok(())
    }

    fn run(
        &self,
        latent: &Latent,
        x: Vec<f32>,
        seed: u64,
        temperature: f32,
        train: bool,
    ) -> Result<(LossParts, Option<Vec<Vec<f32>>>)> {
        let b = x.len() / PIXELS;
        let x = self.dev.tensor_from_vec(x, (b, Const::<PIXELS>));
        let (enc, dec) = &self.model;
        let shape = (b, Const::<BLOCKS>, Const::<CATS>);
        let logits = enc
            .forward(x.clone().traced(Gradients::leaky()))
            .reshape_like(&shape);
        let kl_logits = logits.retaped::<OwnedTape<f32, D>>();
        let z = latent.apply(logits, seed, temperature)?;
        let x_logits = dec.forward(z.reshape_like(&(b, Const::<LATENT>)));
        let (loss, recon, kl) = vae_loss(x_logits, &x, kl_logits);
        let value = loss.as_vec()[0];
        if !value.is_finite() {
            bail!("the loss is not finite ({value})");
        }
        let parts = LossParts {
            loss: value as f64,
            recon: recon as f64,
            kl: kl as f64,
        };
        if !train {
            return Ok((parts, None));
        }
        let grads = loss.try_backward().map_err(|e| {
            let why = latent.take_backward_error().map(|e| e.to_string());
            anyhow::anyhow!(
                "backward pass failed: {}",
                why.unwrap_or_else(|| format!("{e:?}"))
            )
        })?;
        Ok((parts, Some(self.grads_of(&grads))))
    }
}

/// The passes of `backend`, or an error if this binary cannot run it.
pub fn passes(backend: Backend) -> Result<Option<Box<dyn Passes>>> {
    match backend {
        Backend::Cpu => Ok(None),
        Backend::DfdxCpu => Ok(Some(Box::new(DeviceVae::new(Cpu::default())))),
        Backend::Cuda => cuda(),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Option<Box<dyn Passes>>> {
    let dev = Cuda::try_build(0, 0).map_err(|e| anyhow::anyhow!("no CUDA device: {e:?}"))?;
    Ok(Some(Box::new(DeviceVae::new(dev))))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Option<Box<dyn Passes>>> {
    Backend::Cuda.check_available()?;
    unreachable!("check_available fails without the cuda feature")
}

/// Writes device gradients into host gradients for the host Adam.
pub fn host_grads(host: &VaeModel, grads: &[Vec<f32>]) -> Result<Gradients<f32, Cpu>> {
    let mut g = Gradients::leaky();
    for (p, v) in params(host).iter().zip(grads) {
        p.set_grad(&mut g, v)
            .map_err(|e| anyhow::anyhow!("gradient of the wrong size: {e:?}"))?;
    }
    Ok(g)
}
