//! Reading the step fixtures written by `scripts/torch_reference/*.py fixture`, moving
//! named tensors into and out of our models, and comparing with a stated tolerance.

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::*;
use imle_paper::train::{Checkpoint, RunStamp};
use std::collections::{BTreeMap, HashMap};

/// A fixture: its f32 and u8 tensors by name, and its metadata.
pub struct Fixture {
    pub f32: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub u8: BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    pub meta: HashMap<String, String>,
}

impl Fixture {
    /// Reads `tests/fixtures/<name>`.
    pub fn load(name: &str) -> Fixture {
        Self::load_path(&format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
    }

    /// Reads the safetensors file `path` (f32 and u8 tensors).
    pub fn load_path(path: &str) -> Fixture {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("a safetensors header");
        let st = SafeTensors::deserialize(&bytes).expect("a safetensors file");
        let mut fx = Fixture {
            f32: BTreeMap::new(),
            u8: BTreeMap::new(),
            meta: header.metadata().clone().unwrap_or_default(),
        };
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            match view.dtype() {
                StDtype::F32 => {
                    let v = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    fx.f32.insert(name, (shape, v));
                }
                StDtype::U8 => {
                    fx.u8.insert(name, (shape, view.data().to_vec()));
                }
                d => panic!("{name}: unexpected dtype {d:?}"),
            }
        }
        fx
    }

    /// Every f32 tensor's values by name.
    pub fn values(&self) -> BTreeMap<String, Vec<f32>> {
        self.f32
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }

    /// The f32 tensor `name`'s values.
    pub fn get(&self, name: &str) -> &[f32] {
        &self
            .f32
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no tensor {name}"))
            .1
    }

    /// A metadata value.
    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> T {
        self.meta
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("fixture metadata {key} missing or malformed"))
    }

    /// Every f32 tensor under `prefix/` with the prefix removed.
    pub fn under(&self, prefix: &str) -> BTreeMap<String, Vec<f32>> {
        let p = format!("{prefix}/");
        self.f32
            .iter()
            .filter_map(|(k, (_, v))| k.strip_prefix(&p).map(|n| (n.to_string(), v.clone())))
            .collect()
    }
}

/// A checkpoint to move named tensors in and out of a model (`Checkpoint::put_model` /
/// `take_model`, the names `save_safetensors` gives).
fn scratch() -> Checkpoint {
    Checkpoint::new(
        RunStamp {
            experiment: "parity".into(),
            config: serde_json::Value::Null,
            data: None,
        },
        Vec::new(),
    )
}

/// Every tensor of `model` (parameters and batch-norm statistics) by name.
pub fn tensors<M: TensorCollection<f32, Cpu>>(model: &M) -> BTreeMap<String, Vec<f32>> {
    let mut ck = scratch();
    ck.put_model("m", model);
    ck.tensors
        .into_iter()
        .map(|(k, (_, v))| (k.trim_start_matches("m/").to_string(), v))
        .collect()
}

/// Overwrites every tensor of `model` with `values` (each must be there, of its size).
pub fn set_tensors<M: TensorCollection<f32, Cpu>>(
    model: &mut M,
    values: &BTreeMap<String, Vec<f32>>,
) {
    let mut ck = scratch();
    ck.put_model("m", model);
    for (key, (_, v)) in ck.tensors.iter_mut() {
        let name = key.trim_start_matches("m/");
        let new = values
            .get(name)
            .unwrap_or_else(|| panic!("no values for {name}"));
        assert_eq!(new.len(), v.len(), "{name}: size");
        v.clone_from(new);
    }
    ck.take_model("m", model).unwrap();
}

/// The gradient of every trainable tensor of `model` in `grads`, by name.
pub fn gradients<M: TensorCollection<f32, Cpu>>(
    model: &M,
    grads: &Gradients<f32, Cpu>,
) -> BTreeMap<String, Vec<f32>> {
    struct Get<'a>(&'a Gradients<f32, Cpu>, BTreeMap<String, Vec<f32>>);
    impl TensorVisitor<f32, Cpu> for Get<'_> {
        type Viewer = (ViewTensorRef, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Cpu;
        fn visit<S: Shape>(
            &mut self,
            opts: TensorOptions<S, f32, Cpu>,
            (t, name): (&Tensor<S, f32, Cpu>, String),
        ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
            if opts.do_gradient_update {
                self.1.insert(name, self.0.get(t).as_vec());
            }
            Ok(None)
        }
    }
    let mut g = Get(grads, BTreeMap::new());
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut g,
    })
    .unwrap();
    g.1
}

/// Gradients of `model` holding `values` (by name) for every trainable tensor.
pub fn gradients_from<M: TensorCollection<f32, Cpu>>(
    model: &M,
    values: &BTreeMap<String, Vec<f32>>,
) -> Gradients<f32, Cpu> {
    struct Put<'a>(&'a BTreeMap<String, Vec<f32>>, Gradients<f32, Cpu>);
    impl TensorVisitor<f32, Cpu> for Put<'_> {
        type Viewer = (ViewTensorRef, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Cpu;
        fn visit<S: Shape>(
            &mut self,
            opts: TensorOptions<S, f32, Cpu>,
            (t, name): (&Tensor<S, f32, Cpu>, String),
        ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
            if opts.do_gradient_update {
                let v = self
                    .0
                    .get(&name)
                    .unwrap_or_else(|| panic!("no gradient for {name}"));
                self.1.get_or_alloc_mut(t)?.copy_from_slice(v);
            }
            Ok(None)
        }
    }
    let mut p = Put(values, Gradients::leaky());
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut p,
    })
    .unwrap();
    p.1
}

/// Asserts `|ours - theirs| <= atol + rtol |theirs|` element-wise, with `atol = rel_atol *
/// max |theirs|`; prints the worst element on failure.
#[track_caller]
pub fn assert_close(what: &str, ours: &[f32], theirs: &[f32], rtol: f32, rel_atol: f32) {
    assert_close_floor(what, ours, theirs, rtol, rel_atol, 0.0)
}

/// [`assert_close`] with `atol` at least `floor`: for a tensor that is a sum of terms
/// which cancel (e.g. the bias gradient of a layer whose output gradient sums to zero
/// per row), whose own size says nothing of its rounding error.
#[track_caller]
pub fn assert_close_floor(
    what: &str,
    ours: &[f32],
    theirs: &[f32],
    rtol: f32,
    rel_atol: f32,
    floor: f32,
) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let atol = (rel_atol * scale).max(floor);
    let (mut worst, mut at) = (0f32, 0);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(a.is_finite(), "{what}[{i}] = {a}");
        let excess = (a - b).abs() - (atol + rtol * b.abs());
        if excess > worst {
            (worst, at) = (excess, i);
        }
    }
    assert!(
        worst <= 0.0,
        "{what}: element {at} is {} here, {} in PyTorch (tolerance {atol:e} + {rtol:e} |x|, max |x| = {scale:e})",
        ours[at],
        theirs[at]
    );
}

/// The largest absolute value of any tensor of `tensors`.
pub fn max_abs<'a>(tensors: impl IntoIterator<Item = &'a Vec<f32>>) -> f32 {
    tensors
        .into_iter()
        .flatten()
        .fold(0f32, |m, v| m.max(v.abs()))
}

/// The largest `|ours - theirs| / max |theirs|` (for the test's report).
pub fn max_rel(ours: &[f32], theirs: &[f32]) -> f32 {
    let scale = theirs
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
        / scale
}
