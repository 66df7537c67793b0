//! Step parity with PyTorch: the same weights and batch give the same forward output,
//! loss, gradient of every parameter, batch-norm statistics and Adam step as an
//! independent PyTorch implementation (`scripts/torch_reference/`, which wrote the
//! fixtures in `tests/fixtures/`; no Python is needed here).

mod fixture;
mod l2x;
mod same_start;
mod vae;
mod warcraft;
