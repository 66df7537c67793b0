//! The networks of Table 2 on `imle_conv` layers: ResNet18's first block as the official
//! `CombResnet18` (conv 7x7/2 → batch norm → ReLU → max pool 3x3/2 → layer1 = two
//! BasicBlocks of 64 channels → adaptive max pool to K x K → mean over the channels = one
//! non-negative cost per cell), and the same trunk with a 1x1 convolution head for the
//! baseline that predicts the path directly.
//!
//! The images are 8K x 8K, so the trunk's 2K x 2K output pools to K x K with a 2 x 2 max
//! pool of stride 2, which is what `AdaptiveMaxPool2d((K, K))` computes for that ratio.
//! The stem takes the data: no gradient for the input image (PyTorch skips it too).

use dfdx::prelude::*;
use imle_conv::builders as cb;

/// The trunk: stem, layer1, pooling to K x K; `(batch, 64, K, K)`.
pub type TrunkSpec = (
    (
        cb::UnbiasedConv2DOnData<3, 64, 7, 2, 3>,
        cb::BatchNormReLU2D<64>,
        cb::MaxPool2D<3, 2, 1>,
    ),
    (cb::BasicBlock<64>, cb::BasicBlock<64>, cb::MaxPool2D<2, 2>),
);
/// The baseline: the trunk and a 1x1 convolution to one logit per cell.
pub type DirectSpec = (TrunkSpec, cb::Conv2D<64, 1, 1>);
/// The built trunk.
pub type Trunk = <TrunkSpec as BuildOnDevice<Cpu, f32>>::Built;
/// The built baseline.
pub type Direct = <DirectSpec as BuildOnDevice<Cpu, f32>>::Built;

/// A batch of normalised images, `(batch, 3, 8K, 8K)`.
pub type Images<T = NoneTape> = Tensor<(usize, Const<3>, usize, usize), f32, Cpu, T>;
/// One value per cell, `(batch, K * K)`, row-major cells.
pub type PerCell<T = NoneTape> = Tensor<(usize, usize), f32, Cpu, T>;

/// The network of a run.
#[derive(Debug, Clone)]
pub enum Net {
    /// Vertex costs (mean over the trunk's channels), fed to a solver.
    Costs(Trunk),
    /// Path logits (the baseline).
    Direct(Direct),
}

fn flatten<T: Tape<f32, Cpu>>(y: Tensor<(usize, usize, usize), f32, Cpu, T>) -> PerCell<T> {
    let (b, h, w) = *y.shape();
    y.reshape_like(&(b, h * w))
}

impl Net {
    /// A fresh network (the layers' default initialisation, from `seed`).
    pub fn new(direct: bool, seed: u64) -> Self {
        let dev = Cpu::seed_from_u64(seed);
        match direct {
            false => Net::Costs(dev.build_module::<TrunkSpec, f32>()),
            true => Net::Direct(dev.build_module::<DirectSpec, f32>()),
        }
    }

    /// Train mode (batch statistics, running ones updated): costs or logits, `(batch, K K)`.
    pub fn forward_train(
        &mut self,
        x: Images<OwnedTape<f32, Cpu>>,
    ) -> PerCell<OwnedTape<f32, Cpu>> {
        match self {
            Net::Costs(m) => flatten(m.forward_mut(x).mean::<(usize, usize, usize), Axis<1>>()),
            Net::Direct(m) => {
                let y = m.1.forward(m.0.forward_mut(x));
                let (b, _, h, w) = *y.shape();
                y.reshape_like(&(b, h * w))
            }
        }
    }

    /// Eval mode (running statistics): costs or logits, `(batch, K K)`.
    pub fn forward_eval(&self, x: Images) -> PerCell {
        match self {
            Net::Costs(m) => flatten(m.forward(x).mean::<(usize, usize, usize), Axis<1>>()),
            Net::Direct(m) => {
                let y = m.forward(x);
                let (b, _, h, w) = *y.shape();
                y.reshape_like(&(b, h * w))
            }
        }
    }

    /// Whether this is the baseline.
    pub fn is_direct(&self) -> bool {
        matches!(self, Net::Direct(_))
    }
}
