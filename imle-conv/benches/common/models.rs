//! The benchmarked models, shared by `benches/layers.rs` and `examples/encoder_timing.rs`:
//! the Warcraft encoder (ResNet18's first block) and the L2X selector's convolutions, each
//! also with its first layer on data (no input gradient, as training needs).

use imle_conv::builders as cb;

/// conv7x7/2 -> BN -> ReLU -> maxpool 3x3/2/1 -> 2 x BasicBlock(64) -> maxpool 2x2.
pub type Encoder = (
    (
        cb::UnbiasedConv2D<3, 64, 7, 2, 3>,
        cb::BatchNormReLU2D<64>,
        cb::MaxPool2D<3, 2, 1>,
    ),
    (cb::BasicBlock<64>, cb::BasicBlock<64>, cb::MaxPool2D<2, 2>),
);
/// [`Encoder`] whose stem takes the data: no gradient for the input image.
pub type DataEncoder = (
    (
        cb::UnbiasedConv2DOnData<3, 64, 7, 2, 3>,
        cb::BatchNormReLU2D<64>,
        cb::MaxPool2D<3, 2, 1>,
    ),
    (cb::BasicBlock<64>, cb::BasicBlock<64>, cb::MaxPool2D<2, 2>),
);
/// Three Conv1D(100, k=3, same) with ReLU between them.
pub type Selector = (
    cb::Conv1D<200, 100, 3, 1, cb::Same>,
    dfdx::nn::builders::ReLU,
    cb::Conv1D<100, 100, 3, 1, cb::Same>,
    dfdx::nn::builders::ReLU,
    cb::Conv1D<100, 100, 3, 1, cb::Same>,
);
/// [`Selector`] whose first layer takes the frozen embeddings: no input gradient.
pub type DataSelector = (
    cb::Conv1DOnData<200, 100, 3, 1, cb::Same>,
    dfdx::nn::builders::ReLU,
    cb::Conv1D<100, 100, 3, 1, cb::Same>,
    dfdx::nn::builders::ReLU,
    cb::Conv1D<100, 100, 3, 1, cb::Same>,
);
