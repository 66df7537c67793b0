//! The paper's experiments, one module per figure or table, on one framework.
//!
//! # How to add an experiment
//!
//! Write one module `src/experiments/<name>.rs` with a unit type `pub struct Name;` that
//! implements [`Experiment`]:
//!
//! * `Args` — a `clap::Args` struct of overrides (`Option<_>` fields, so that the profile
//!   chooses the defaults; their doc comments are the `--help` text), and `Config`, the
//!   resolved configuration (serde), built by [`Experiment::resolve`] (quick vs full
//!   defaults, validation with clear messages);
//! * [`Experiment::units`] — the grid of independent runs (one per method, setting or
//!   seed); each unit's result (`Unit`, serde) is computed by [`Experiment::compute`]
//!   (per-repetition seeds from [`derive_seed`], training through [`crate::train`]) and
//!   saved in the run folder, so that `--shard i/N` can split the grid over processes;
//! * [`Experiment::report`] — turns the units' results into a [`Report`]: the JSON
//!   record's data and summary, CSV tables, figures, console lines and the Markdown
//!   section of `figures/README.md` (the paper's numbers beside ours).
//!
//! Then register it: `pub mod name;` here, one `Command` variant `Name(name::Args)` and
//! one match arm `Command::Name(a) => run_cli::<name::Name>(&a, &ctx)` in `src/main.rs`,
//! and one line `one::<name::Name>(ctx, &mut each)?` in [`run_all`] (with its name in
//! [`ALL`]). The generic [`run`] does the rest: it runs the units (all, a shard, or none with
//! `--report-only`), writes `<name>.json`, `<table>.csv`, `<figure>.png`/`.svg`, and
//! regenerates `README.md` in the output folder. `tests/framework.rs` holds a complete
//! toy experiment written this way.

pub mod fidelity;
pub mod fig2;
pub mod fig3;
pub mod fig4;
#[cfg(feature = "csv")]
pub mod table1;
pub mod table2;
pub mod template;
pub mod trained;

use crate::output::{RunRecord, Table};
use crate::plot::Figure;
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::run::{
    check_replaces, default_out, derive_seed, Profile, RunContext, Shard, Summary,
};
pub use crate::stats::{linspace, mean_std};

/// What a report produces; [`run`] writes it.
#[derive(Default)]
pub struct Report {
    /// The record's per-step / per-epoch values.
    pub data: serde_json::Value,
    /// The record's headline numbers.
    pub summary: serde_json::Value,
    /// `(stem, table)`: written as `<stem>.csv` (polars).
    pub tables: Vec<(String, Table)>,
    /// `(stem, figure)`: written as `<stem>.png` and `<stem>.svg`.
    pub figures: Vec<(String, Figure)>,
    /// The Markdown section of `figures/README.md`.
    pub readme: String,
    /// Headline numbers for the console, one per line.
    pub lines: Vec<String>,
}

/// One experiment of the paper (see the module documentation).
pub trait Experiment {
    /// Name: the CLI command and the stem of its files (`fig3`).
    const NAME: &'static str;
    /// Title of its `figures/README.md` section.
    const TITLE: &'static str;
    /// The data sets it needs (names in [`crate::data::DATASETS`]).
    const DATA: &'static [&'static str] = &[];
    /// Command-line overrides.
    type Args: clap::Args + Default + Clone + std::fmt::Debug;
    /// The resolved configuration.
    type Config: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Sync;
    /// The result of one unit of the grid.
    type Unit: Serialize + DeserializeOwned + Send;

    /// The configuration of `args` for `profile`.
    fn resolve(args: &Self::Args, profile: Profile) -> Result<Self::Config>;
    /// The grid: one name per independent unit (default: a single unit, `all`).
    fn units(_cfg: &Self::Config) -> Vec<String> {
        vec!["all".into()]
    }
    /// Whether units may run in parallel (rayon; results do not depend on it).
    const PARALLEL_UNITS: bool = false;
    /// Computes one unit.
    fn compute(cfg: &Self::Config, unit: &str, ctx: &RunContext) -> Result<Self::Unit>;
    /// The name and checksum of each data set the units are computed on, read as the
    /// configuration says (a `--data-dir` is always read, and a bad file is an error).
    /// Finished units and the record keep it; a unit finished on other data is an error.
    /// Default: none (synthetic data).
    fn data_identity(_cfg: &Self::Config) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// How far an unfinished unit got (for `--report-only`; e.g. a training run's
    /// epochs so far from its checkpoint). Default: nothing.
    fn partial(_cfg: &Self::Config, _unit: &str, _ctx: &RunContext) -> Result<Option<Self::Unit>> {
        Ok(None)
    }
    /// The finished units that a record of this experiment holds, by unit name: `data`
    /// is its `<name>.json`'s `data`, as [`Experiment::report`] wrote it. [`run`] restores
    /// them into a run folder that lacks them (a fresh clone, a lost `runs/`) when the
    /// record's profile, seed and configuration are this run's, so that a resumed run
    /// neither trains them again nor reports without them. Default: none.
    fn recorded(_data: &serde_json::Value) -> Vec<(String, Self::Unit)> {
        Vec::new()
    }
    /// The figures, tables and numbers from the units' results (`None`: not finished).
    fn report(
        cfg: &Self::Config,
        units: &[(String, Option<Self::Unit>)],
        ctx: &RunContext,
    ) -> Result<Report>;
}

/// A finished unit as saved in the run folder.
#[derive(Serialize, Deserialize)]
struct UnitFile<C, U> {
    experiment: String,
    unit: String,
    seed: u64,
    config: C,
    /// [`Experiment::data_identity`] when it was computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    data: Vec<(String, String)>,
    result: U,
}

/// The file of a unit's result: `<run dir>/units/<unit>.json` (`/` in a unit name
/// becomes `__`).
pub fn unit_path(ctx: &RunContext, experiment: &str, unit: &str) -> PathBuf {
    ctx.run_dir_of(experiment)
        .join("units")
        .join(format!("{}.json", unit.replace('/', "__")))
}

/// A finished unit read back: its result, or why the file there is not this run's.
enum Saved<U> {
    None,
    Result(U),
    Stale(String),
    /// Finished on other data than the data found now: an error.
    OtherData(String),
}

/// `name checksum, ...` of a data identity.
fn identity_text(id: &[(String, String)]) -> String {
    id.iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_unit<E: Experiment>(
    cfg: &E::Config,
    unit: &str,
    identity: &[(String, String)],
    ctx: &RunContext,
) -> Result<Saved<E::Unit>> {
    let path = unit_path(ctx, E::NAME, unit);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Saved::None);
    };
    let f: UnitFile<serde_json::Value, E::Unit> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a finished unit of {}", path.display(), E::NAME))?;
    if !crate::output::same_json(&f.config, &serde_json::to_value(cfg)?) || f.seed != ctx.seed {
        return Ok(Saved::Stale(format!(
            "{} was computed with another configuration or seed than this run's: ignored \
             (delete it, or report with the flags it was run with)",
            path.display()
        )));
    }
    // A unit written before units recorded their data (`data` empty) is taken as it is.
    if !f.data.is_empty() && f.data != identity {
        return Ok(Saved::OtherData(format!(
            "{} was computed on other data ({}) than the data found now ({}): delete it, \
             run with --fresh, or point --data-dir at the data it was computed on",
            path.display(),
            identity_text(&f.data),
            identity_text(identity)
        )));
    }
    Ok(Saved::Result(f.result))
}

/// Writes into the run folder each finished unit of `E` that the record in `ctx.out_dir`
/// holds ([`Experiment::recorded`]) and the run folder lacks, if that record was made with
/// this profile, seed and configuration. Returns how many it wrote.
fn restore_recorded<E: Experiment>(
    cfg: &E::Config,
    units: &[String],
    identity: &[(String, String)],
    ctx: &RunContext,
) -> Result<usize> {
    let path = ctx.path(&format!("{}.json", E::NAME));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(0);
    };
    let Ok(rec) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(0);
    };
    let recorded_identity: Vec<(String, String)> =
        serde_json::from_value(rec["data_identity"].clone()).unwrap_or_default();
    let same = rec["profile"] == serde_json::to_value(ctx.profile)?
        && rec["seed"].as_u64() == Some(ctx.seed)
        && crate::output::same_json(&rec["config"], &serde_json::to_value(cfg)?)
        && (recorded_identity.is_empty() || recorded_identity == identity);
    if !same {
        return Ok(0);
    }
    let mut restored = 0;
    for (name, result) in E::recorded(&rec["data"]) {
        let file = unit_path(ctx, E::NAME, &name);
        if !units.contains(&name) || file.exists() {
            continue;
        }
        let unit = UnitFile {
            experiment: E::NAME.into(),
            unit: name,
            seed: ctx.seed,
            config: cfg,
            data: recorded_identity.clone(),
            result: &result,
        };
        crate::output::write_json(&file, &unit)?;
        restored += 1;
    }
    Ok(restored)
}

/// Runs experiment `E` as `ctx` says: every unit (or those of `ctx.shard`, or none with
/// `ctx.report_only`), saving each unit's result; then, unless this is a shard, the
/// report of every finished unit, written as `<name>.json`, CSV tables, PNG/SVG figures
/// and a section of `README.md` in `ctx.out_dir`.
pub fn run<E: Experiment>(cfg: &E::Config, ctx: &RunContext) -> Result<Summary> {
    let started = Instant::now();
    let units = E::units(cfg);
    let mine: Vec<usize> = (0..units.len())
        .filter(|&u| ctx.shard.is_none_or(|s| s.contains(u)))
        .collect();
    let mut results: Vec<Option<E::Unit>> = (0..units.len()).map(|_| None).collect();
    let mut lines = Vec::new();
    let mut stale = Vec::new();
    let identity = E::data_identity(cfg)?;
    // Finished units are read back (restored from the record first where the run folder
    // lacks them), not computed again, unless this is a `--fresh` run.
    if !ctx.fresh {
        let restored = restore_recorded::<E>(cfg, &units, &identity, ctx)?;
        if restored > 0 {
            lines.push(format!(
                "restored {restored} finished unit(s) from {} into {}",
                ctx.path(&format!("{}.json", E::NAME)).display(),
                ctx.run_dir_of(E::NAME).join("units").display()
            ));
        }
    }
    if ctx.report_only || !ctx.fresh {
        for (u, name) in units.iter().enumerate() {
            match load_unit::<E>(cfg, name, &identity, ctx) {
                Ok(Saved::Result(r)) => results[u] = Some(r),
                Ok(Saved::Stale(why)) if ctx.report_only => stale.push(why),
                Ok(Saved::OtherData(why)) => anyhow::bail!(why),
                Err(e) if ctx.report_only => return Err(e),
                // Computed again, and the file replaced.
                Ok(_) | Err(_) => {}
            }
        }
    }
    let (mine, finished_before): (Vec<usize>, Vec<usize>) =
        mine.into_iter().partition(|&u| results[u].is_none());
    if !ctx.report_only && !finished_before.is_empty() {
        lines.push(format!(
            "{} unit(s) already finished in {}: read back, not computed again (--fresh \
             computes them again)",
            finished_before.len(),
            ctx.run_dir_of(E::NAME).join("units").display()
        ));
    }
    if !ctx.report_only {
        let compute = |u: usize| -> Result<(usize, E::Unit)> {
            let path = unit_path(ctx, E::NAME, &units[u]);
            if ctx.fresh && path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
            let r = E::compute(cfg, &units[u], ctx)
                .with_context(|| format!("{} unit {}", E::NAME, units[u]))?;
            let file = UnitFile {
                experiment: E::NAME.into(),
                unit: units[u].clone(),
                seed: ctx.seed,
                config: cfg,
                data: identity.clone(),
                result: &r,
            };
            crate::output::write_json(&path, &file)?;
            Ok((u, r))
        };
        let done: Vec<(usize, E::Unit)> = if E::PARALLEL_UNITS {
            use rayon::prelude::*;
            mine.par_iter()
                .map(|&u| compute(u))
                .collect::<Result<_>>()?
        } else {
            mine.iter().map(|&u| compute(u)).collect::<Result<_>>()?
        };
        for (u, r) in done {
            results[u] = Some(r);
        }
    }
    if let (Some(shard), false) = (ctx.shard, ctx.report_only) {
        return Ok(Summary {
            experiment: E::NAME.into(),
            files: Vec::new(),
            lines: vec![format!(
                "shard {shard}: computed {} of the {} units into {}; merge the finished \
                 units with `{} --report-only`",
                mine.len(),
                units.len(),
                ctx.run_dir_of(E::NAME).join("units").display(),
                E::NAME
            )],
        });
    }
    if ctx.report_only {
        for (u, name) in units.iter().enumerate() {
            if results[u].is_none() {
                results[u] = E::partial(cfg, name, ctx)?;
            }
        }
    }
    let finished = results.iter().filter(|r| r.is_some()).count();
    let pairs: Vec<(String, Option<E::Unit>)> = units.into_iter().zip(results).collect();
    let report = E::report(cfg, &pairs, ctx)?;
    let mut files = Vec::new();
    for (stem, fig) in &report.figures {
        fig.save(&ctx.out_dir, stem)?;
        files.extend([format!("{stem}.png"), format!("{stem}.svg")]);
    }
    for (stem, table) in &report.tables {
        let file = format!("{stem}.csv");
        table.write_csv(&ctx.path(&file))?;
        files.push(file);
    }
    let json = format!("{}.json", E::NAME);
    files.insert(0, json.clone());
    let rec = RunRecord {
        experiment: E::NAME.into(),
        title: E::TITLE.into(),
        command: ctx.command.clone(),
        profile: ctx.profile,
        seed: ctx.seed,
        threads: ctx.threads,
        config: cfg,
        data_identity: identity.clone(),
        data: &report.data,
        summary: &report.summary,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        files: files.clone(),
        readme: report.readme.clone(),
    };
    crate::output::write_json(&ctx.path(&json), &rec)?;
    write_readme(&ctx.out_dir)?;
    lines.extend(report.lines);
    lines.extend(stale);
    if finished < pairs.len() {
        lines.push(format!(
            "{} of {} units finished (report-only merges what the run folder holds)",
            finished,
            pairs.len()
        ));
    }
    Ok(Summary {
        experiment: E::NAME.into(),
        files: files.iter().map(|f| ctx.path(f)).collect(),
        lines,
    })
}

/// Resolves `args` for `ctx.profile` and [`run`]s `E`.
pub fn run_with_args<E: Experiment>(args: &E::Args, ctx: &RunContext) -> Result<Summary> {
    run::<E>(&E::resolve(args, ctx.profile)?, ctx)
}

/// Every experiment with its default arguments, in the order of `figures/README.md`;
/// one whose data set is missing is skipped with the message that says where it looked.
/// `each` sees every experiment's summary and the instant it started.
pub fn run_all(
    ctx: &RunContext,
    overwrite: bool,
    mut each: impl FnMut(Result<Summary>, Instant) -> Result<()>,
) -> Result<()> {
    fn one<E: Experiment>(
        ctx: &RunContext,
        each: &mut dyn FnMut(Result<Summary>, Instant) -> Result<()>,
    ) -> Result<()> {
        for name in E::DATA {
            let ds = crate::data::dataset(name)?;
            if let Err(e) = ds.locate(None) {
                println!("== {} == skipped: {e}", E::NAME);
                return Ok(());
            }
        }
        let started = Instant::now();
        each(run_with_args::<E>(&E::Args::default(), ctx), started)
    }
    for name in ALL {
        check_replaces(&ctx.out_dir, name, ctx.profile, overwrite)?;
    }
    one::<fig2::Fig2>(ctx, &mut each)?;
    one::<fig3::Fig3>(ctx, &mut each)?;
    one::<fidelity::Fidelity>(ctx, &mut each)?;
    one::<fig4::Fig4>(ctx, &mut each)?;
    #[cfg(feature = "csv")]
    one::<table1::Table1>(ctx, &mut each)?;
    one::<table2::Table2>(ctx, &mut each)?;
    Ok(())
}

/// The experiments [`run_all`] runs.
pub const ALL: &[&str] = &["fig2", "fig3", "fidelity", "fig4", "table1", "table2"];

/// Order of sections in `figures/README.md`; records not listed follow alphabetically.
pub const README_ORDER: &[&str] = &["fig2", "fig3", "fidelity", "fig4", "table1", "table2"];

/// Regenerates `<dir>/README.md` from the `*.json` run records present in `dir`.
pub fn write_readme(dir: &Path) -> Result<()> {
    let mut records: Vec<(String, serde_json::Value)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let (Some(name), Some(_)) = (v["experiment"].as_str(), v["readme"].as_str()) else {
            continue;
        };
        records.push((name.to_string(), v));
    }
    // A folder holding paper-protocol records shows only those: a quick record written
    // there with --overwrite never stands in the README beside the paper's numbers.
    let skipped: Vec<String> = if records.iter().any(|(_, v)| v["profile"] == "full") {
        let quick: Vec<String> = records
            .iter()
            .filter(|(_, v)| v["profile"] != "full")
            .map(|(n, _)| n.clone())
            .collect();
        records.retain(|(_, v)| v["profile"] == "full");
        quick
    } else {
        Vec::new()
    };
    records.sort_by_key(|(n, _)| {
        (
            README_ORDER
                .iter()
                .position(|o| o == n)
                .unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    let mut md = String::from(
        "# Figures and tables\n\n\
         *Generated by `imle-paper` from the JSON run records in this folder; do not edit by \
         hand. Every number below was measured by the command shown next to it.*\n\n\
         Each experiment writes `<name>.json` (configuration, seed, per-step values, summary, \
         run time), CSV tables and PNG/SVG figures. Regenerate everything with \
         `cargo run --release -- all` (quick profile) or `cargo run --release -- all --full` \
         (the paper's protocol).\n\n",
    );
    if dir.join("parity").join("README.md").is_file() {
        md.push_str(
            "Our training against an independent PyTorch implementation of the same protocols, \
             on the same files (step fixtures and learning curves): [`parity/`](parity/README.md).\n\n",
        );
    }
    for (name, v) in &records {
        let title = v["title"].as_str().unwrap_or(name);
        md.push_str(&format!("## {title}\n\n"));
        md.push_str(&format!(
            "Command: `cargo run --release -- {}` (profile `{}`, seed {}, {:.1} s, imle-paper {}).\n\n",
            v["command"].as_str().unwrap_or("?"),
            v["profile"].as_str().unwrap_or("?"),
            v["seed"],
            v["elapsed_seconds"].as_f64().unwrap_or(f64::NAN),
            v["crate_version"].as_str().unwrap_or("?"),
        ));
        if let Some(files) = v["files"].as_array() {
            let pngs: Vec<&str> = files
                .iter()
                .filter_map(|f| f.as_str())
                .filter(|f| f.ends_with(".png"))
                .collect();
            for p in pngs {
                md.push_str(&format!("![{name}]({p})\n\n"));
            }
        }
        md.push_str(v["readme"].as_str().unwrap_or(""));
        md.push_str("\n\n");
        if let Some(files) = v["files"].as_array() {
            let list: Vec<String> = files
                .iter()
                .filter_map(|f| f.as_str())
                .map(|f| format!("[`{f}`]({f})"))
                .collect();
            md.push_str(&format!("Files: {}.\n\n", list.join(", ")));
        }
    }
    if !skipped.is_empty() {
        md.push_str(&format!(
            "*Not shown: the quick-profile records of {} in this folder (only full-protocol \
             records are listed here).*\n",
            skipped.join(", ")
        ));
    }
    crate::output::write_atomic(&dir.join("README.md"), md.as_bytes())
}

/// A linspace given on the command line as `START,STOP,N`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Linspace {
    /// First value.
    pub start: f64,
    /// Last value.
    pub stop: f64,
    /// Number of values.
    pub n: usize,
}

impl Linspace {
    /// The values.
    pub fn values(&self) -> Vec<f64> {
        linspace(self.start, self.stop, self.n)
    }
}

impl std::str::FromStr for Linspace {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!("expected START,STOP,N (e.g. 0.5,1,5), got '{s}'"));
        }
        let start: f64 = parts[0]
            .parse()
            .map_err(|_| format!("bad START '{}'", parts[0]))?;
        let stop: f64 = parts[1]
            .parse()
            .map_err(|_| format!("bad STOP '{}'", parts[1]))?;
        let n: usize = parts[2]
            .parse()
            .map_err(|_| format!("bad N '{}'", parts[2]))?;
        if !(start.is_finite() && stop.is_finite()) || n == 0 {
            return Err(format!(
                "START and STOP must be finite and N >= 1, got '{s}'"
            ));
        }
        Ok(Self { start, stop, n })
    }
}

/// The per-epoch mean and population std of `value` over `runs` (each a run's epochs, in
/// order; a run shorter than the longest counts only for its epochs): `(epochs from 1,
/// mean, std)`.
pub fn epoch_curve(
    runs: &[&[crate::train::EpochRecord]],
    value: impl Fn(&crate::train::EpochRecord) -> f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = runs.iter().map(|r| r.len()).max().unwrap_or(0);
    let (mean, std) = (0..n)
        .map(|e| mean_std(runs.iter().filter_map(|r| r.get(e)).map(&value)))
        .unzip();
    ((1..=n).map(|e| e as f64).collect(), mean, std)
}

/// One line chart per `(title, y label, metric)` of `charts`: per epoch, 100 × the mean ±
/// std of the evaluation metric over each group's runs, one series per group `(label,
/// palette colour, the runs' epochs)`; groups without epochs are left out.
pub fn epoch_charts(
    groups: &[(String, usize, Vec<&[crate::train::EpochRecord]>)],
    charts: &[(String, &str, &str)],
) -> Vec<crate::plot::Panel> {
    use crate::plot::{LineChart, Panel, Series};
    charts
        .iter()
        .map(|(title, y_label, metric)| {
            let mut chart = LineChart::new(title.clone(), "epoch", *y_label);
            for (label, colour, runs) in groups.iter().filter(|g| g.2.iter().any(|r| !r.is_empty()))
            {
                let (x, mean, std) = epoch_curve(runs, |r| 100.0 * r.eval(metric));
                chart = chart.series(Series::new(label.clone(), x, mean).band(std).color(*colour));
            }
            Panel::Line(chart)
        })
        .collect()
}

/// clap value parser: a finite number > 0.
pub fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {s}"))
    }
}

/// clap value parser: a finite number >= 0.
pub fn non_negative_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number >= 0, got {s}"))
    }
}

/// The estimator override `METHOD=SPEC` of `--spec` (SPEC: `kind:key=value,...` or JSON,
/// see [`crate::spec`]), the method read by `parse`.
pub fn method_spec<M>(
    s: &str,
    parse: impl Fn(&str) -> Option<M>,
) -> std::result::Result<(M, crate::spec::EstimatorSpec), String> {
    let (m, spec) = s
        .split_once('=')
        .ok_or_else(|| format!("expected METHOD=SPEC, got '{s}'"))?;
    let method = parse(m.trim()).ok_or_else(|| format!("unknown method '{m}'"))?;
    let spec = spec.parse().map_err(|e| format!("{e:#}"))?;
    Ok((method, spec))
}

/// The methods of `--methods`, each read by `parse`; an unknown name lists `choices`, an
/// empty list is an error.
pub fn parse_methods<M>(
    names: &[String],
    parse: impl Fn(&str) -> Option<M>,
    choices: &[&str],
) -> Result<Vec<M>> {
    let methods = names
        .iter()
        .map(|n| {
            parse(n.trim()).with_context(|| {
                format!("unknown method '{n}'; choose from {}", choices.join(", "))
            })
        })
        .collect::<Result<Vec<M>>>()?;
    if methods.is_empty() {
        anyhow::bail!("--methods needs at least one method");
    }
    Ok(methods)
}

/// clap value parser: an integer >= 1.
pub fn positive_usize(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("must be an integer >= 1, got {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_parses() {
        let l: Linspace = "0.5,1,5".parse().unwrap();
        assert_eq!(l.values().len(), 5);
        assert!("0.5,1".parse::<Linspace>().is_err());
    }
}
