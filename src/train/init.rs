//! Weight initialisation of any dfdx model from a seed: Keras' defaults (the official
//! TensorFlow code's), Glorot-uniform kernels and zero biases.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sets every trainable tensor of `model`: a tensor named `*bias` to zeros, every other
/// one (a kernel `[out, in, k...]` or a dense weight `[out, in]`) uniform in
/// `±sqrt(6 / (fan_in + fan_out))` with `fan_in = in · Πk`, `fan_out = out · Πk` (Keras'
/// `glorot_uniform`), drawn from one ChaCha8 stream of `seed` in the model's visiting
/// order. Non-trainable tensors (batch-norm statistics) are left alone.
pub fn glorot_uniform<M: TensorCollection<f32, Cpu>>(model: &mut M, seed: u64) {
    let mut v = Glorot {
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    // Visiting by reference cannot fail.
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut v,
    });
}

struct Glorot {
    rng: ChaCha8Rng,
}

impl TensorVisitor<f32, Cpu> for Glorot {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        (t, name): (&mut Tensor<S, f32, Cpu>, String),
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let n = t.shape().num_elements();
        let dims = t.shape().concrete();
        let dims = dims.as_ref();
        let values = if name.ends_with("bias") || dims.len() < 2 {
            vec![0.0; n]
        } else {
            let receptive: usize = dims[2..].iter().product();
            let (fan_out, fan_in) = (dims[0] * receptive, dims[1] * receptive);
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            (0..n).map(|_| self.rng.gen_range(-limit..limit)).collect()
        };
        t.copy_from(&values);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imle_conv::builders as cb;

    #[test]
    fn kernels_are_glorot_bounded_and_biases_zero() {
        let dev = Cpu::default();
        let mut m = dev.build_module::<(cb::Conv1D<4, 6, 3>, cb::Dense<6, 2>), f32>();
        glorot_uniform(&mut m, 7);
        let conv_limit = (6.0f32 / (4.0 * 3.0 + 6.0 * 3.0)).sqrt();
        let w = m.0.weight.as_vec();
        assert!(w.iter().all(|v| v.abs() <= conv_limit));
        // 72 draws spread over the range (not all tiny, not all equal).
        assert!(w.iter().any(|v| v.abs() > conv_limit / 2.0));
        assert!(m.0.bias.as_vec().iter().all(|&v| v == 0.0));
        let dense_limit = (6.0f32 / 8.0).sqrt();
        assert!(m.1.weight.as_vec().iter().all(|v| v.abs() <= dense_limit));
        let mut again = dev.build_module::<(cb::Conv1D<4, 6, 3>, cb::Dense<6, 2>), f32>();
        glorot_uniform(&mut again, 7);
        assert_eq!(again.1.weight.as_vec(), m.1.weight.as_vec());
    }
}
