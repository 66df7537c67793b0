//! The experiment framework: optimisers over any dfdx model (bitwise equal to dfdx's),
//! checkpoints (batch-norm statistics included; refused when they belong to another
//! run; random and truncated bytes are errors, never panics), a killed run of a tiny CNN
//! resumed equals an uninterrupted one, and a toy experiment written on the
//! `Experiment` trait, sharded and merged.

use dfdx::optim::{Adam as DfdxAdam, Optimizer, Sgd as DfdxSgd};
use dfdx::prelude::*;
use imle_conv::builders as cb;
use imle_paper::experiments::{self, Experiment, Report};
use imle_paper::output::Table;
use imle_paper::run::{Profile, RunContext};
use imle_paper::train::{
    AdamHyper, Checkpoint, EpochRecord, Learner, LrSchedule, Metrics, Optimiser, OptimiserConfig,
    RunStamp, Step, Trainer,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tiny CNN with batch norm: conv 1→4 (3x3), BN + ReLU, global average pool, 4→2.
type Net = (
    cb::Conv2D<1, 4, 3, 1, 1>,
    cb::BatchNormReLU2D<4>,
    cb::GlobalAvgPool,
    Linear<4, 2>,
);
type Model = <Net as BuildOnDevice<Cpu, f32>>::Built;
type Images = Tensor<(usize, Const<1>, usize, usize), f32, Cpu>;

/// Every tensor of the model (parameters and batch-norm statistics), flattened.
fn all_values(m: &Model) -> Vec<f32> {
    let mut ck = Checkpoint::new(stamp(), Vec::new());
    ck.put_model("m", m);
    ck.tensors.values().flat_map(|(_, v)| v.clone()).collect()
}

fn stamp() -> RunStamp {
    RunStamp {
        experiment: "tiny-cnn".into(),
        config: serde_json::json!({ "lr": 0.01 }),
        data: Some(("synthetic".into(), "abc".into())),
    }
}

/// `n` 6x6 images whose class is which half is brighter.
fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = vec![0.0f32; n * 36];
    let mut y = vec![0; n];
    for i in 0..n {
        y[i] = rng.gen_range(0..2);
        for p in 0..36 {
            let bright = (p % 6 < 3) == (y[i] == 0);
            x[i * 36 + p] = rng.gen_range(0.0..0.5) + if bright { 0.5 } else { 0.0 };
        }
    }
    (x, y)
}

fn batch(dev: &Cpu, x: &[f32], idx: &[usize]) -> Images {
    let v: Vec<f32> = idx
        .iter()
        .flat_map(|&i| x[i * 36..(i + 1) * 36].to_vec())
        .collect();
    dev.tensor_from_vec(v, (idx.len(), Const::<1>, 6, 6))
}

fn loss_of(
    model: &mut Model,
    dev: &Cpu,
    x: &[f32],
    y: &[usize],
    idx: &[usize],
) -> (f32, Gradients<f32, Cpu>) {
    let xb = batch(dev, x, idx);
    let logits = model.forward_mut(xb.trace(model.alloc_grads()));
    let mut t = vec![0.0f32; idx.len() * 2];
    for (r, &i) in idx.iter().enumerate() {
        t[r * 2 + y[i]] = 1.0;
    }
    let target = dev.tensor_from_vec(t, (idx.len(), Const::<2>));
    let loss = cross_entropy_with_logits_loss(logits, target);
    let v = loss.array();
    (v, loss.backward())
}

#[test]
fn adam_and_sgd_equal_dfdx_bitwise_and_leave_batch_norm_statistics_alone() {
    let dev = Cpu::seed_from_u64(0);
    let (x, y) = data(16, 1);
    let idx: Vec<usize> = (0..16).collect();
    let hyper = AdamHyper {
        lr: 0.01,
        ..Default::default()
    };
    for ours_cfg in [
        OptimiserConfig::Adam(hyper),
        OptimiserConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
        },
    ] {
        let mut a: Model = dev.build_module::<Net, f32>();
        let mut b = a.clone();
        let mut ours = Optimiser::new(ours_cfg);
        let mut adam = DfdxAdam::new(&b, hyper.to_dfdx());
        let mut sgd = DfdxSgd::new(
            &b,
            dfdx::optim::SgdConfig {
                lr: 0.05,
                momentum: Some(dfdx::optim::Momentum::Classic(0.9)),
                weight_decay: None,
            },
        );
        for _ in 0..4 {
            let (_, mut ga) = loss_of(&mut a, &dev, &x, &y, &idx);
            let (_, gb) = loss_of(&mut b, &dev, &x, &y, &idx);
            let running = (a.1.running_mean.as_vec(), a.1.running_var.as_vec());
            ours.update(&mut a, &mut ga, ours_cfg.lr()).unwrap();
            // Batch-norm running statistics are not parameters.
            assert_eq!(
                running,
                (a.1.running_mean.as_vec(), a.1.running_var.as_vec())
            );
            match ours_cfg {
                OptimiserConfig::Adam(_) => adam.update(&mut b, &gb).unwrap(),
                OptimiserConfig::Sgd { .. } => sgd.update(&mut b, &gb).unwrap(),
            }
            assert_eq!(all_values(&a), all_values(&b), "{ours_cfg:?}");
        }
        // conv weight + bias, BN scale + bias, linear weight + bias.
        assert_eq!(ours.slots.len(), 6);
    }
}

/// The tiny CNN as a learner: its state is the model, Adam, and nothing else.
struct Cnn {
    dev: Cpu,
    model: Model,
    opt: Optimiser,
    x: Vec<f32>,
    y: Vec<usize>,
}

impl Cnn {
    fn new() -> Self {
        let dev = Cpu::seed_from_u64(3);
        let model = dev.build_module::<Net, f32>();
        let (x, y) = data(40, 2);
        Self {
            dev,
            model,
            opt: Optimiser::new(OptimiserConfig::Adam(AdamHyper {
                lr: 0.01,
                ..Default::default()
            })),
            x,
            y,
        }
    }
}

impl Learner for Cnn {
    fn train_len(&self) -> usize {
        self.y.len()
    }
    fn train_step(&mut self, step: Step) -> anyhow::Result<Metrics> {
        let (l, mut g) = loss_of(&mut self.model, &self.dev, &self.x, &self.y, step.batch);
        self.opt.update(&mut self.model, &mut g, step.lr)?;
        Ok(Metrics::from([("loss".to_string(), l as f64)]))
    }
    fn evaluate(&mut self, _epoch: usize) -> anyhow::Result<Metrics> {
        let idx: Vec<usize> = (0..self.y.len()).collect();
        let logits = self.model.forward(batch(&self.dev, &self.x, &idx));
        let p = logits.as_vec();
        let acc = idx
            .iter()
            .filter(|&&i| (p[i * 2 + 1] > p[i * 2]) == (self.y[i] == 1))
            .count() as f64
            / idx.len() as f64;
        Ok(Metrics::from([("accuracy".to_string(), acc)]))
    }
    fn save(&self, ck: &mut Checkpoint) -> anyhow::Result<()> {
        ck.put_model("model", &self.model);
        ck.put_optimiser(&self.opt);
        Ok(())
    }
    fn load(&mut self, ck: &Checkpoint) -> anyhow::Result<()> {
        ck.take_model("model", &mut self.model)
            .map_err(anyhow::Error::msg)?;
        ck.take_optimiser(&mut self.opt).map_err(anyhow::Error::msg)
    }
}

fn trainer(epochs: usize, path: Option<std::path::PathBuf>) -> Trainer {
    let mut t = Trainer::new(stamp(), epochs, 8, 7, 0.01);
    t.schedule = LrSchedule::StepDecay {
        milestones: vec![2],
        gamma: 0.1,
    };
    t.checkpoint = path;
    t
}

fn without_times(h: &[EpochRecord]) -> Vec<(usize, f64, Metrics, Metrics)> {
    h.iter()
        .map(|r| (r.epoch, r.lr, r.train.clone(), r.eval.clone()))
        .collect()
}

#[test]
fn a_killed_cnn_run_resumes_to_the_same_numbers_batch_norm_statistics_included() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut a = Cnn::new();
    let ha = trainer(4, None).fit(&mut a, Vec::new(), |_| {}).unwrap();
    // "Killed" after epoch 1: a fresh process continues from the checkpoint.
    let mut b = Cnn::new();
    trainer(1, Some(path.clone()))
        .fit(&mut b, Vec::new(), |_| {})
        .unwrap();
    drop(b);
    let mut c = Cnn::new();
    let hc = trainer(4, Some(path.clone()))
        .fit(&mut c, Vec::new(), |_| {})
        .unwrap();
    assert_eq!(without_times(&ha), without_times(&hc));
    assert_eq!(all_values(&a.model), all_values(&c.model));
    assert_eq!(a.opt.slots, c.opt.slots);
    // The schedule: ×0.1 after epoch 2; the BN statistics moved and were saved.
    assert_eq!(hc[1].lr, 0.01);
    assert!((hc[2].lr - 0.001).abs() < 1e-12);
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.epoch(), 4);
    let (_, rm) = &ck.tensors["model/1.running_mean"];
    assert_ne!(rm, &vec![0.0; 4]);
    assert_eq!(rm, &a.model.1.running_mean.as_vec());
    // The loss fell.
    assert!(ha[3].train("loss") < ha[0].train("loss"), "{ha:?}");
}

#[test]
fn checkpoints_of_another_run_or_model_are_refused_with_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    trainer(1, Some(path.clone()))
        .fit(&mut Cnn::new(), Vec::new(), |_| {})
        .unwrap();
    let mut other = trainer(2, Some(path.clone()));
    other.stamp.data = Some(("synthetic".into(), "def".into()));
    let e = other.fit(&mut Cnn::new(), Vec::new(), |_| {}).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("another run"), "{msg}");
    assert!(
        msg.contains("checksum abc") && msg.contains("checksum def"),
        "{msg}"
    );
    let mut other = trainer(2, Some(path.clone()));
    other.stamp.config = serde_json::json!({ "lr": 0.02 });
    let msg = format!(
        "{:#}",
        other.fit(&mut Cnn::new(), Vec::new(), |_| {}).unwrap_err()
    );
    assert!(msg.contains("configuration"), "{msg}");
    // A model without one of the checkpoint's tensors names it.
    let mut ck = Checkpoint::load(&path).unwrap();
    ck.tensors.remove("model/1.running_var");
    let mut m = Cnn::new();
    let e = ck.take_model("model", &mut m.model).unwrap_err();
    assert!(e.contains("model/1.running_var"), "{e}");
    // Another format version is refused.
    ck.header.version = 99;
    let bytes = ck.to_bytes().unwrap();
    let e = Checkpoint::from_bytes(&bytes, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("version 99"), "{e}");
    // A file that cannot be read: its path, then the OS's reason once (the error's
    // source, which the CLI's `{:#}` prints after the message).
    let missing = dir.path().join("none.safetensors");
    let chain = format!(
        "{:#}",
        anyhow::Error::from(Checkpoint::load(&missing).unwrap_err())
    );
    assert!(chain.contains("none.safetensors"), "{chain}");
    assert_eq!(chain.matches("os error").count(), 1, "{chain}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn checkpoint_parser_survives_random_and_truncated_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cut in 0usize..10_000,
    ) {
        let p = std::path::Path::new("x.safetensors");
        let _ = Checkpoint::from_bytes(&bytes, p);
        let mut ck = Checkpoint::new(stamp(), Vec::new());
        ck.put_model("model", &Cnn::new().model);
        let good = ck.to_bytes().unwrap();
        prop_assert_eq!(Checkpoint::from_bytes(&good, p).unwrap(), ck.clone());
        let cut = cut % good.len();
        prop_assert!(Checkpoint::from_bytes(&good[..cut], p).is_err());
        let mut flipped = good.clone();
        flipped[cut] ^= 0xff;
        let _ = Checkpoint::from_bytes(&flipped, p);
    }
}

/// The toy's `n` in [`finished_units_of_a_record_are_restored_not_computed_again`], whose
/// computations [`RESTORE_COMPUTED`] counts (the other tests use other `n`).
const RESTORE_N: usize = 7;
static RESTORE_COMPUTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A complete toy experiment on the trait: the mean of `n` uniform draws per seed.
struct Toy;

#[derive(Debug, Clone, Default, clap::Args)]
struct ToyArgs {
    #[arg(long)]
    n: Option<usize>,
}

impl Experiment for Toy {
    const NAME: &'static str = "toy";
    const TITLE: &'static str = "Toy";
    type Args = ToyArgs;
    type Config = usize;
    type Unit = f64;

    fn resolve(args: &ToyArgs, profile: Profile) -> anyhow::Result<usize> {
        Ok(args.n.unwrap_or(profile.pick(10, 1000)))
    }
    fn units(_n: &usize) -> Vec<String> {
        (0..5).map(|i| format!("seed{i}")).collect()
    }
    fn compute(n: &usize, unit: &str, ctx: &RunContext) -> anyhow::Result<f64> {
        if *n == RESTORE_N {
            RESTORE_COMPUTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(imle_paper::run::derive_seed(ctx.seed, unit, 0));
        Ok((0..*n).map(|_| rng.gen::<f64>()).sum::<f64>() / *n as f64)
    }
    fn recorded(data: &serde_json::Value) -> Vec<(String, f64)> {
        let units: std::collections::BTreeMap<String, f64> =
            serde_json::from_value(data["units"].clone()).unwrap_or_default();
        units.into_iter().collect()
    }
    fn report(
        _n: &usize,
        units: &[(String, Option<f64>)],
        _: &RunContext,
    ) -> anyhow::Result<Report> {
        let done: Vec<f64> = units.iter().filter_map(|u| u.1).collect();
        let by_name: serde_json::Map<String, serde_json::Value> = units
            .iter()
            .filter_map(|(name, r)| Some((name.clone(), serde_json::json!((*r)?))))
            .collect();
        Ok(Report {
            data: serde_json::json!({ "units": by_name }),
            summary: serde_json::json!({ "units": done.len() }),
            tables: vec![("toy".into(), Table::new().f64("mean", done.clone()))],
            readme: format!("{} units.", done.len()),
            ..Default::default()
        })
    }
}

#[test]
fn a_toy_experiment_on_the_trait_shards_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = |d: &str| RunContext::new(dir.path().join(d)).run_dir(dir.path().join("runs"));
    // Uninterrupted.
    let whole = experiments::run_with_args::<Toy>(&ToyArgs::default(), &ctx("whole")).unwrap();
    assert!(whole.files.iter().any(|f| f.ends_with("toy.csv")));
    let rec = |d: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(d).join("toy.json")).unwrap())
            .unwrap()
    };
    // Shards 1/2 and 2/2 into a fresh run folder, then a report-only merge.
    let runs = dir.path().join("runs2");
    let sharded = |spec: Option<&str>, report_only: bool| {
        let mut c = RunContext::new(dir.path().join("merged")).run_dir(&runs);
        c.shard = spec.map(|s| s.parse().unwrap());
        c.report_only = report_only;
        experiments::run_with_args::<Toy>(&ToyArgs::default(), &c).unwrap()
    };
    let s1 = sharded(Some("1/2"), false);
    assert!(s1.lines[0].contains("3 of the 5 units"), "{:?}", s1.lines);
    // Half finished: the report says so.
    let partial = sharded(None, true);
    assert!(
        partial.lines.iter().any(|l| l.contains("3 of 5 units")),
        "{:?}",
        partial.lines
    );
    sharded(Some("2/2"), false);
    sharded(None, true);
    assert_eq!(rec("whole")["data"], rec("merged")["data"]);
    assert_eq!(rec("merged")["summary"]["units"], 5);
    // Another configuration's units are not merged, and the report says so.
    let mut c = RunContext::new(dir.path().join("x")).run_dir(&runs);
    c.report_only = true;
    let s = experiments::run_with_args::<Toy>(&ToyArgs { n: Some(3) }, &c).unwrap();
    assert_eq!(
        s.lines
            .iter()
            .filter(|l| l.contains("another configuration"))
            .count(),
        5
    );
    assert!(
        s.lines.iter().any(|l| l.contains("0 of 5 units")),
        "{:?}",
        s.lines
    );
}

#[test]
fn finished_units_of_a_record_are_restored_not_computed_again() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figures");
    let args = ToyArgs { n: Some(RESTORE_N) };
    let ctx = |runs: &str| RunContext::new(&out).run_dir(dir.path().join(runs));
    let rec = || std::fs::read_to_string(out.join("toy.json")).unwrap();
    let data =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["data"].clone();
    experiments::run_with_args::<Toy>(&args, &ctx("runs")).unwrap();
    assert_eq!(RESTORE_COMPUTED.load(SeqCst), 5);
    let first = rec();
    // A lost run folder (a fresh clone): the record's units come back, none is computed.
    let s = experiments::run_with_args::<Toy>(&args, &ctx("fresh-clone")).unwrap();
    assert_eq!(RESTORE_COMPUTED.load(SeqCst), 5, "{:?}", s.lines);
    assert!(
        s.lines[0].contains("restored 5 finished unit(s)"),
        "{:?}",
        s.lines
    );
    assert_eq!(data(&rec()), data(&first));
    assert_eq!(
        std::fs::read_dir(dir.path().join("fresh-clone/units"))
            .unwrap()
            .count(),
        5
    );
    // A unit file already there is kept; the others are restored, also for --report-only.
    std::fs::remove_file(dir.path().join("fresh-clone/units/seed3.json")).unwrap();
    let mut c = ctx("fresh-clone");
    c.report_only = true;
    let s = experiments::run_with_args::<Toy>(&args, &c).unwrap();
    assert!(
        s.lines[0].contains("restored 1 finished unit(s)"),
        "{:?}",
        s.lines
    );
    assert_eq!(data(&rec()), data(&first));
    // --fresh, another seed or another configuration: nothing is restored.
    let mut c = ctx("fresh");
    c.fresh = true;
    experiments::run_with_args::<Toy>(&args, &c).unwrap();
    assert_eq!(RESTORE_COMPUTED.load(SeqCst), 10);
    let mut c = ctx("seed1");
    c.seed = 1;
    let s = experiments::run_with_args::<Toy>(&args, &c).unwrap();
    assert_eq!(RESTORE_COMPUTED.load(SeqCst), 15);
    assert!(
        s.lines.iter().all(|l| !l.contains("restored")),
        "{:?}",
        s.lines
    );
    assert_ne!(data(&rec()), data(&first));
    let mut c = ctx("n8");
    c.seed = 1;
    let s = experiments::run_with_args::<Toy>(&ToyArgs { n: Some(8) }, &c).unwrap();
    assert!(
        s.lines.iter().all(|l| !l.contains("restored")),
        "{:?}",
        s.lines
    );
}

/// A toy experiment on data: the "data set" is one file (config: its path), whose
/// contents are its checksum; a file holding "bad" does not parse.
struct ToyOnData;

impl Experiment for ToyOnData {
    const NAME: &'static str = "toy-data";
    const TITLE: &'static str = "Toy on data";
    type Args = ToyArgs;
    type Config = String;
    type Unit = f64;

    fn resolve(_: &ToyArgs, _: Profile) -> anyhow::Result<String> {
        unreachable!("run with a configuration")
    }
    fn units(_: &String) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }
    fn data_identity(path: &String) -> anyhow::Result<Vec<(String, String)>> {
        let text = std::fs::read_to_string(path)?;
        anyhow::ensure!(text != "bad", "{path}: not a data file");
        Ok(vec![("toy".into(), text)])
    }
    fn compute(_: &String, unit: &str, _: &RunContext) -> anyhow::Result<f64> {
        Ok(unit.len() as f64)
    }
    fn report(
        _: &String,
        units: &[(String, Option<f64>)],
        _: &RunContext,
    ) -> anyhow::Result<Report> {
        let done = units.iter().filter(|u| u.1.is_some()).count();
        Ok(Report {
            summary: serde_json::json!({ "units": done }),
            ..Default::default()
        })
    }
}

#[test]
fn finished_units_are_keyed_to_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.txt");
    let data = file.display().to_string();
    let ctx = || RunContext::new(dir.path().join("out")).run_dir(dir.path().join("runs"));
    std::fs::write(&file, "checksum-1").unwrap();
    experiments::run::<ToyOnData>(&data, &ctx()).unwrap();
    let unit: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("runs/units/a.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(unit["data"], serde_json::json!([["toy", "checksum-1"]]));
    // The same data: read back.
    let s = experiments::run::<ToyOnData>(&data, &ctx()).unwrap();
    assert!(
        s.lines
            .iter()
            .any(|l| l.contains("2 unit(s) already finished")),
        "{:?}",
        s.lines
    );
    // A bad data file is an error, even though every unit has finished.
    std::fs::write(&file, "bad").unwrap();
    let e = experiments::run::<ToyOnData>(&data, &ctx()).unwrap_err();
    assert!(format!("{e:#}").contains("not a data file"), "{e:#}");
    // Other data: the finished units are an error naming both checksums, also for
    // --report-only; --fresh computes them again.
    std::fs::write(&file, "checksum-2").unwrap();
    for report_only in [false, true] {
        let mut c = ctx();
        c.report_only = report_only;
        let e = experiments::run::<ToyOnData>(&data, &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum-1") && e.contains("checksum-2"), "{e}");
    }
    let mut c = ctx();
    c.fresh = true;
    experiments::run::<ToyOnData>(&data, &c).unwrap();
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/toy-data.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        rec["data_identity"],
        serde_json::json!([["toy", "checksum-2"]])
    );
}
