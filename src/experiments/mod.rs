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

mod cli;
mod readme;
mod runner;

pub use cli::{
    method_spec, non_negative_f64, parse_methods, positive_f64, positive_usize, Linspace,
};
pub use readme::{write_readme, README_ORDER};
pub use runner::{run, run_with_args, unit_path};

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
