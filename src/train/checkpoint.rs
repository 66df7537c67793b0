//! Checkpoints: the tensors of a training run in a safetensors file, with a JSON header
//! (format version, configuration, data checksum, epoch, metrics history, optimiser and
//! estimator state) in its `__metadata__`.
//!
//! Tensors are named `<part>/<path>`: `model/0.1.weight` (every tensor of the model,
//! batch-norm running statistics included, named as dfdx's `save_safetensors` names
//! them), `optim.a/<path>` and `optim.b/<path>` (the optimiser's buffers). Files are
//! written atomically ([`crate::output::write_atomic`]): a killed run leaves the previous
//! or the new checkpoint, never a half-written one. Any tool that reads safetensors
//! (Python's `safetensors`, dfdx's `load_safetensors` on the `model/` tensors) reads them.

use super::optim::{Optimiser, OptimiserConfig, Slot};
use super::EpochRecord;
use ::safetensors::tensor::{Dtype as SDtype, SafeTensors, TensorView};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The `format` field of every header.
pub const FORMAT: &str = "imle-checkpoint";
/// The current format version.
pub const VERSION: u32 = 1;
/// The `__metadata__` key holding the header.
const HEADER_KEY: &str = "imle";

/// Why a checkpoint could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read.
    #[error("cannot read checkpoint {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why: the error's `source()`, not repeated in its message (anyhow's `{:#}` prints both).
        source: std::io::Error,
    },
    /// Not a checkpoint of this format.
    #[error("{path} is not an imle checkpoint: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A checkpoint of another run.
    #[error(
        "checkpoint {path} belongs to another run ({why}); delete it, choose another \
         --run-dir, or start afresh with --fresh"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        why: String,
    },
}

/// What identifies a run: a checkpoint is only resumed by the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStamp {
    /// The experiment (`fig4`, `table2`, ...).
    pub experiment: String,
    /// The run's configuration without what a resume may change (the number of epochs).
    pub config: serde_json::Value,
    /// The data set's name and checksum (`None`: synthetic data).
    pub data: Option<(String, String)>,
}

/// The JSON header of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Whose run.
    pub stamp: RunStamp,
    /// Finished epochs, in order (the last one is the epoch the run continues after).
    pub history: Vec<EpochRecord>,
    /// The optimiser's configuration, step count and the names of its slots in the
    /// model's visiting order (the tensors are stored sorted by name).
    pub optimiser: Option<OptimiserHeader>,
    /// The learner's estimators ([`super::EstimatorState`]: seed, call counter,
    /// adaptive state), in the learner's order.
    #[serde(default)]
    pub estimators: Vec<super::EstimatorState>,
    /// Everything else the learner needs, as it chooses to write it.
    pub extra: serde_json::Value,
}

/// The optimiser's part of the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimiserHeader {
    /// Which optimiser.
    pub config: OptimiserConfig,
    /// Updates done.
    pub t: i32,
    /// The tensors it updates, in order.
    pub slots: Vec<String>,
}

/// A checkpoint in memory: header and named f32 tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The header.
    pub header: Header,
    /// `name → (shape, values)`.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Checkpoint {
    /// An empty checkpoint of the run `stamp` after the epochs of `history`.
    pub fn new(stamp: RunStamp, history: Vec<EpochRecord>) -> Self {
        Self {
            header: Header {
                format: FORMAT.into(),
                version: VERSION,
                stamp,
                history,
                optimiser: None,
                estimators: Vec::new(),
                extra: serde_json::Value::Null,
            },
            tensors: BTreeMap::new(),
        }
    }

    /// The number of finished epochs.
    pub fn epoch(&self) -> usize {
        self.header.history.len()
    }

    /// Adds what a one-model run keeps: the model as `model/...`, the optimiser, and one
    /// estimator state holding AIMLE's `adaptive` state (if any).
    pub fn put_run<M: TensorCollection<f32, Cpu>>(
        &mut self,
        model: &M,
        opt: &Optimiser,
        adaptive: Option<(f32, Option<f32>)>,
    ) {
        self.put_model("model", model);
        self.put_optimiser(opt);
        self.header.estimators = vec![super::EstimatorState {
            seed: 0,
            calls: 0,
            adaptive,
        }];
    }

    /// Restores what [`Checkpoint::put_run`] wrote into `model` and `opt`; returns the
    /// adaptive state to give back to the estimator.
    pub fn take_run<M: TensorCollection<f32, Cpu>>(
        &self,
        model: &mut M,
        opt: &mut Optimiser,
    ) -> anyhow::Result<Option<(f32, Option<f32>)>> {
        self.take_model("model", model)
            .map_err(anyhow::Error::msg)?;
        self.take_optimiser(opt).map_err(anyhow::Error::msg)?;
        let state = self
            .header
            .estimators
            .first()
            .ok_or_else(|| anyhow::anyhow!("the checkpoint has no estimator state"))?;
        Ok(state.adaptive)
    }

    /// The epochs recorded in the checkpoint at `path`, if there is one written for
    /// `config` (the run's configuration without what a resume may change, compared at f32
    /// precision). A checkpoint of another configuration is left alone and counts as no
    /// progress, with a note on stderr: a report goes on without it, while training from
    /// it stops with [`CheckpointError::Mismatch`].
    pub fn history_for(
        path: &Path,
        config: &serde_json::Value,
    ) -> anyhow::Result<Option<Vec<EpochRecord>>> {
        if !path.exists() {
            return Ok(None);
        }
        let ck = Self::load(path)?;
        if !crate::output::same_json(&ck.header.stamp.config, config) {
            eprintln!(
                "note: {} was written by another configuration than the one asked for: \
                 its progress is not reported (remove it, or train with --fresh)",
                path.display()
            );
            return Ok(None);
        }
        Ok(Some(ck.header.history))
    }

    /// The checkpoint at `path` of a run of `experiment` and the run's configuration, with
    /// clear errors for another experiment's checkpoint or an unreadable configuration.
    pub fn load_run<C: serde::de::DeserializeOwned>(
        path: &Path,
        experiment: &str,
    ) -> anyhow::Result<(Self, C)> {
        let ck = Self::load(path)?;
        if ck.header.stamp.experiment != experiment {
            anyhow::bail!(
                "{} is a checkpoint of {}, not of {experiment}",
                path.display(),
                ck.header.stamp.experiment
            );
        }
        let c = serde_json::from_value(ck.header.stamp.config.clone()).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a {experiment} run configuration: {e}",
                path.display()
            )
        })?;
        Ok((ck, c))
    }

    /// Removes the files `names` of a run folder `dir` that exist (`--fresh`).
    pub fn remove_all(dir: &Path, names: &[&str]) -> anyhow::Result<()> {
        for f in names {
            let p = dir.join(f);
            if p.exists() {
                std::fs::remove_file(&p)
                    .map_err(|e| anyhow::anyhow!("removing {}: {e}", p.display()))?;
            }
        }
        Ok(())
    }

    /// Adds every tensor of `model` as `<prefix>/<path>`.
    pub fn put_model<M: TensorCollection<f32, Cpu>>(&mut self, prefix: &str, model: &M) {
        let mut w = Put {
            prefix,
            out: &mut self.tensors,
        };
        // Visiting by reference cannot fail.
        let _ = M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut w,
        });
    }

    /// Overwrites every tensor of `model` with `<prefix>/<path>`; each must be present
    /// with the same shape.
    pub fn take_model<M: TensorCollection<f32, Cpu>>(
        &self,
        prefix: &str,
        model: &mut M,
    ) -> Result<(), String> {
        let mut r = Take {
            prefix,
            tensors: &self.tensors,
            missing: None,
        };
        let _ = M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut r,
        });
        r.missing.map_or(Ok(()), Err)
    }

    /// Adds the optimiser's configuration, step count and buffers.
    pub fn put_optimiser(&mut self, opt: &Optimiser) {
        self.header.optimiser = Some(OptimiserHeader {
            config: opt.config,
            t: opt.t,
            slots: opt.slots.iter().map(|s| s.name.clone()).collect(),
        });
        for s in &opt.slots {
            for (part, buf) in [("optim.a", &s.a), ("optim.b", &s.b)] {
                self.tensors
                    .insert(format!("{part}/{}", s.name), (vec![buf.len()], buf.clone()));
            }
        }
    }

    /// Restores the optimiser's step count and buffers (its configuration must match).
    pub fn take_optimiser(&self, opt: &mut Optimiser) -> Result<(), String> {
        let h = self
            .header
            .optimiser
            .as_ref()
            .ok_or("the checkpoint holds no optimiser state")?;
        if h.config != opt.config {
            return Err(format!(
                "optimiser {:?}, this run's is {:?}",
                h.config, opt.config
            ));
        }
        let get = |part: &str, n: &str| {
            self.tensors
                .get(&format!("{part}/{n}"))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("tensor {part}/{n} is missing"))
        };
        opt.slots = h
            .slots
            .iter()
            .map(|n| {
                Ok(Slot {
                    name: n.clone(),
                    a: get("optim.a", n)?,
                    b: get("optim.b", n)?,
                })
            })
            .collect::<Result<_, String>>()?;
        opt.t = h.t;
        Ok(())
    }

    /// The file's bytes (safetensors, header in `__metadata__["imle"]`).
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, (shape, v))| {
                (
                    k.clone(),
                    shape.clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, shape, b)| Ok((k.as_str(), TensorView::new(SDtype::F32, shape.clone(), b)?)))
            .collect::<Result<Vec<_>, ::safetensors::SafeTensorError>>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let meta = HashMap::from([(HEADER_KEY.to_string(), serde_json::to_string(&self.header)?)]);
        ::safetensors::serialize(views, &Some(meta)).map_err(|e| anyhow::anyhow!("{e:?}"))
    }

    /// Parses a checkpoint file's bytes (`path` names it in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let bad = |why: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("{e:?}")))?;
        let text = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(HEADER_KEY))
            .ok_or_else(|| bad("no imle header".into()))?;
        let header: Header =
            serde_json::from_str(text).map_err(|e| bad(format!("bad header: {e}")))?;
        if header.format != FORMAT {
            return Err(bad(format!("format '{}'", header.format)));
        }
        if header.version != VERSION {
            return Err(bad(format!(
                "format version {} (this build reads version {VERSION})",
                header.version
            )));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("{e:?}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != SDtype::F32 {
                return Err(bad(format!("tensor {name} is not f32")));
            }
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(name, (view.shape().to_vec(), v));
        }
        Ok(Self { header, tensors })
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::output::write_atomic(path, &self.to_bytes()?)
    }

    /// Reads the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Refuses a checkpoint of another run than `stamp`, saying what differs.
    pub fn check_stamp(&self, stamp: &RunStamp, path: &Path) -> Result<(), CheckpointError> {
        let mine = &self.header.stamp;
        let why = if mine.experiment != stamp.experiment {
            format!("experiment {} vs {}", mine.experiment, stamp.experiment)
        } else if mine.data != stamp.data {
            let show = |d: &Option<(String, String)>| match d {
                Some((n, c)) => format!("{n} with checksum {c}"),
                None => "no data set".into(),
            };
            format!(
                "trained on {}, this run uses {}",
                show(&mine.data),
                show(&stamp.data)
            )
        } else if !crate::output::same_json(&mine.config, &stamp.config) {
            format!(
                "configuration {} differs from this run's {}",
                mine.config, stamp.config
            )
        } else {
            return Ok(());
        };
        Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            why,
        })
    }
}

struct Put<'a> {
    prefix: &'a str,
    out: &'a mut BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl TensorVisitor<f32, Cpu> for Put<'_> {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;
    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, Cpu>,
        (t, name): (&Tensor<S, f32, Cpu>, String),
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        let shape = t.shape().concrete().into_iter().collect();
        self.out
            .insert(format!("{}/{name}", self.prefix), (shape, t.as_vec()));
        Ok(None)
    }
}

struct Take<'a> {
    prefix: &'a str,
    tensors: &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    missing: Option<String>,
}

impl TensorVisitor<f32, Cpu> for Take<'_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;
    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, Cpu>,
        (t, name): (&mut Tensor<S, f32, Cpu>, String),
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        let key = format!("{}/{name}", self.prefix);
        let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
        match self.tensors.get(&key) {
            Some((s, v)) if *s == shape => t.copy_from(v),
            Some((s, _)) => {
                self.missing.get_or_insert(format!(
                    "tensor {key} has shape {s:?}, the model's {shape:?}"
                ));
            }
            None => {
                self.missing
                    .get_or_insert(format!("tensor {key} is missing"));
            }
        }
        Ok(None)
    }
}
