//! The L2X networks of the official code: the selector (one logit per token) and the
//! predictor (the aroma score from the selected words), on `imle_conv` layers.

use super::EMB;
use dfdx::prelude::*;
use imle_conv::builders::{Conv1D, Conv1DOnData, Dense, GlobalMaxPool, ReLU};
use imle_conv::Same;

/// Filters of every convolution (the official code's 100; the appendix says 250).
pub const FILTERS: usize = 100;
/// Hidden units of the predictor.
pub const HIDDEN: usize = 250;

/// The selector: frozen embeddings → Conv1D(100, 3, ReLU) = `h`; global branch: global max
/// pool of `h` → Dense(100, ReLU); local branch: two Conv1D(100, 3, ReLU) on `h`; the
/// global vector tiled over the positions and concatenated before the local one →
/// dropout → Conv1D(100, 1, ReLU) → Conv1D(1, 1): θ, one logit per token. The first layer
/// takes the data, so it computes no input gradient.
pub type SelectorSpec = (
    (
        Conv1DOnData<EMB, FILTERS, 3, 1, Same>,
        Dense<FILTERS, FILTERS>,
    ),
    (
        Conv1D<FILTERS, FILTERS, 3, 1, Same>,
        Conv1D<FILTERS, FILTERS, 3, 1, Same>,
    ),
    (Conv1D<{ 2 * FILTERS }, FILTERS, 1>, Conv1D<FILTERS, 1, 1>),
);
/// The predictor: `Σ_t emb_t · z_t / k` → Dense(250, ReLU) → Dense(1, sigmoid).
pub type PredictorSpec = (Dense<EMB, HIDDEN>, Dense<HIDDEN, 1>);
/// Selector and predictor.
pub type ExplainerSpec = (SelectorSpec, PredictorSpec);
/// The built model: `.0` selector, `.1` predictor.
pub type ExplainerModel = <ExplainerSpec as BuildOnDevice<Cpu, f32>>::Built;

/// A batch of embedded reviews, channels first: `(batch, 200, maxlen)`.
pub type Embedded<T = NoneTape> = Tensor<(usize, Const<EMB>, usize), f32, Cpu, T>;
/// One value per token: `(batch, maxlen)`.
pub type PerToken<T = NoneTape> = Tensor<(usize, usize), f32, Cpu, T>;

/// The selector's logits θ `(batch, maxlen)`; `dropout` multiplies the concatenated
/// features `(batch, 200, maxlen)` (a mask of 0 and `1/(1 − p)`) when training.
pub fn selector_logits<T: Tape<f32, Cpu> + Merge<T>>(
    m: &ExplainerModel,
    x: Embedded<T>,
    dropout: Option<Tensor<(usize, Const<{ 2 * FILTERS }>, usize), f32, Cpu>>,
) -> PerToken<T> {
    let (b, _, l) = *x.shape();
    let s = &m.0;
    let h = ReLU.forward(s.0 .0.forward(x));
    let global = ReLU.forward(s.0 .1.forward(GlobalMaxPool.forward(h.with_empty_tape())));
    let tiled = global.broadcast_like(&(b, Const::<FILTERS>, l));
    let local = ReLU.forward(s.1 .1.forward(ReLU.forward(s.1 .0.forward(h))));
    // Const + Const has no sum type in dfdx 0.13: one side as a runtime dimension.
    let local = local.reshape_like(&(b, FILTERS, l));
    let both =
        (tiled, local)
            .concat_along(Axis::<1>)
            .reshape_like(&(b, Const::<{ 2 * FILTERS }>, l));
    let both = match dropout {
        Some(mask) => both * mask,
        None => both,
    };
    let logits = s.2 .1.forward(ReLU.forward(s.2 .0.forward(both)));
    logits.reshape_like(&(b, l))
}

/// The predictor's score in `(0, 1)` `(batch, 1)` from the selection `z` (`(batch,
/// maxlen)`, on the tape) of the embedded reviews `x`, the selected embeddings summed and
/// divided by `k`.
pub fn predict<T: Tape<f32, Cpu>>(
    m: &ExplainerModel,
    x: &Embedded,
    z: PerToken<T>,
    k: usize,
) -> Tensor<(usize, Const<1>), f32, Cpu, T> {
    let (b, _, l) = *x.shape();
    let pooled = (z.broadcast_like(&(b, Const::<EMB>, l)) * x.clone())
        .sum::<(usize, Const<EMB>), Axis<2>>()
        / k as f32;
    let p = &m.1;
    p.1.forward(ReLU.forward(p.0.forward(pooled))).sigmoid()
}
