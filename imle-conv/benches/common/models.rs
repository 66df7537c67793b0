//! The benchmarked models, shared by `benches/layers.rs` and `examples/encoder_timing.rs`:
//! the Warcraft encoder (ResNet18's first block) and the L2X selector's convolutions, each
//! also with its first layer on data (no input gradient, as training needs).

use imle_conv::builders as cb;
use imle_conv::builders::ReLU;

/// `Stem` -> BN -> ReLU -> maxpool 3x3/2/1 -> 2 x BasicBlock(64) -> maxpool 2x2.
pub type EncoderWith<Stem> = (
    (Stem, cb::BatchNormReLU2D<64>, cb::MaxPool2D<3, 2, 1>),
    (cb::BasicBlock<64>, cb::BasicBlock<64>, cb::MaxPool2D<2, 2>),
);
/// The encoder with a conv 7x7/2 stem.
pub type Encoder = EncoderWith<cb::UnbiasedConv2D<3, 64, 7, 2, 3>>;
/// [`Encoder`] whose stem takes the data: no gradient for the input image.
pub type DataEncoder = EncoderWith<cb::UnbiasedConv2DOnData<3, 64, 7, 2, 3>>;

/// `First` -> ReLU -> Conv1D(100, k=3, same) -> ReLU -> Conv1D(100, k=3, same).
pub type SelectorWith<First> = (
    First,
    ReLU,
    cb::Conv1D<100, 100, 3, 1, cb::Same>,
    ReLU,
    cb::Conv1D<100, 100, 3, 1, cb::Same>,
);
/// Three Conv1D(100, k=3, same) with ReLU between them.
pub type Selector = SelectorWith<cb::Conv1D<200, 100, 3, 1, cb::Same>>;
/// [`Selector`] whose first layer takes the frozen embeddings: no input gradient.
pub type DataSelector = SelectorWith<cb::Conv1DOnData<200, 100, 3, 1, cb::Same>>;

/// The Figure 4 VAE's two MLPs (784-512-256-400 | 400-256-512-784) on `Dense`.
pub type VaeMlp = (
    (
        cb::Dense<784, 512>,
        ReLU,
        cb::Dense<512, 256>,
        ReLU,
        cb::Dense<256, 400>,
    ),
    (
        cb::Dense<400, 256>,
        ReLU,
        cb::Dense<256, 512>,
        ReLU,
        cb::Dense<512, 784>,
    ),
);
