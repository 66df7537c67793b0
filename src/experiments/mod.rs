//! The paper's experiments, one module per figure or table.
//!
//! # How to add an experiment
//!
//! An experiment is a module `src/experiments/<name>.rs` exposing
//!
//! * `Args` — a `clap::Args` struct of overrides (`Option<_>` fields, so that the
//!   profile can choose defaults), with doc comments (they are the `--help` text);
//! * `Config` — the resolved configuration (`serde::Serialize`), built by
//!   `Args::resolve(&self, Profile) -> anyhow::Result<Config>` (quick vs full defaults,
//!   validation with clear messages);
//! * `run(&Config, &RunContext) -> anyhow::Result<Summary>` — does the work (progress bars
//!   from [`RunContext::progress`], per-repetition seeds from [`derive_seed`]) and writes
//!   `<name>.json` ([`RunContext::write_record`]), `<name>[_part].csv`
//!   ([`RunContext::write_table`]) and `<name>.png`/`.svg` ([`RunContext::save_figure`]).
//!
//! Then add it to `src/main.rs`: one `Command` variant `Name(name::Args)`, one match arm
//! (`Command::Name(a) => run_one(&ctx, || name::run(&a.resolve(ctx.profile)?, &ctx))`), and,
//! if it belongs there, one line in `run_all`. The record's `readme` field (Markdown: the
//! paper's numbers beside ours) becomes a section of `figures/README.md`, which
//! [`write_readme`] regenerates from the JSON files present; list the experiment in
//! [`README_ORDER`] to place it.

pub mod fidelity;
pub mod fig2;
pub mod fig3;
pub mod fig4;

use crate::output::{RunRecord, Table};
use crate::plot::Figure;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Run profile: `quick` (the default; minutes on a laptop, same protocol with fewer
/// repetitions/steps) or `full` (the paper's protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Fewer repetitions/steps, same protocol.
    #[default]
    Quick,
    /// The paper's protocol.
    Full,
}

impl Profile {
    /// `quick` or `full`.
    pub fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Profile::Quick => quick,
            Profile::Full => full,
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
        })
    }
}

/// Where and how an experiment runs: output folder, profile, seed, command line.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Output folder (created if needed).
    pub out_dir: PathBuf,
    /// Profile.
    pub profile: Profile,
    /// Base seed.
    pub seed: u64,
    /// Requested rayon threads (informational; the pool is set up by the caller).
    pub threads: Option<usize>,
    /// The command line, recorded in the JSON and in `figures/README.md`.
    pub command: String,
    /// Show progress bars (on stderr).
    pub progress: bool,
}

impl RunContext {
    /// A context for notebooks and tests: quick profile, seed 0, no progress bars.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            profile: Profile::Quick,
            seed: 0,
            threads: None,
            command: "(library call)".into(),
            progress: false,
        }
    }
    /// Sets the profile.
    pub fn profile(mut self, p: Profile) -> Self {
        self.profile = p;
        self
    }
    /// Sets the seed.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }

    /// A progress bar of `len` steps (hidden when progress is off or stderr is not a
    /// terminal).
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>24} [{bar:40.cyan/blue}] {pos}/{len} ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        pb
    }

    /// `out_dir/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }

    /// Writes `<name>.csv` with polars; returns the file name.
    pub fn write_table(&self, name: &str, table: &Table) -> Result<String> {
        let file = format!("{name}.csv");
        table.write_csv(&self.path(&file))?;
        Ok(file)
    }

    /// Writes `<stem>.png` and `<stem>.svg`; returns the file names.
    pub fn save_figure(&self, stem: &str, fig: &Figure) -> Result<Vec<String>> {
        fig.save(&self.out_dir, stem)?;
        Ok(vec![format!("{stem}.png"), format!("{stem}.svg")])
    }

    /// Builds and writes `<experiment>.json`, then regenerates `figures/README.md` in
    /// the output folder.
    #[allow(clippy::too_many_arguments)]
    pub fn write_record<C: Serialize, D: Serialize, S: Serialize>(
        &self,
        experiment: &str,
        title: &str,
        config: C,
        data: D,
        summary: S,
        started: Instant,
        mut files: Vec<String>,
        readme: String,
    ) -> Result<PathBuf> {
        let file = format!("{experiment}.json");
        files.insert(0, file.clone());
        let rec = RunRecord {
            experiment: experiment.into(),
            title: title.into(),
            command: self.command.clone(),
            profile: self.profile,
            seed: self.seed,
            threads: self.threads,
            config,
            data,
            summary,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            files,
            readme,
        };
        let path = self.path(&file);
        crate::output::write_json(&path, &rec)?;
        write_readme(&self.out_dir)?;
        Ok(path)
    }
}

/// The default output folder of a profile: `figures/` for the paper's protocol,
/// `figures/quick/` for quick runs, so that a quick run never replaces the committed
/// full-protocol results.
pub fn default_out(profile: Profile) -> PathBuf {
    match profile {
        Profile::Full => PathBuf::from("figures"),
        Profile::Quick => PathBuf::from("figures/quick"),
    }
}

/// Refuses (before anything is written) a run of `experiment` in `profile` that would
/// replace a record of a stronger protocol in `out_dir` (a full-protocol
/// `<experiment>.json`, replaced by a quick run), unless `overwrite`.
pub fn check_replaces(
    out_dir: &Path,
    experiment: &str,
    profile: Profile,
    overwrite: bool,
) -> Result<()> {
    let path = out_dir.join(format!("{experiment}.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let existing = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["profile"].as_str().map(str::to_owned));
    if existing.as_deref() == Some("full") && profile == Profile::Quick && !overwrite {
        anyhow::bail!(
            "{} holds a full-protocol record; a {profile} run would replace it and its \
             figures. Write elsewhere (the quick default is figures/quick/, or --out DIR), \
             run with --full, or pass --overwrite to replace it",
            path.display()
        );
    }
    Ok(())
}

/// What a run returns: the files written and a few lines for the console.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Experiment name.
    pub experiment: String,
    /// Files written (paths).
    pub files: Vec<PathBuf>,
    /// Headline numbers, one per line.
    pub lines: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "== {} ==", self.experiment)?;
        for l in &self.lines {
            writeln!(f, "  {l}")?;
        }
        for p in &self.files {
            writeln!(f, "  wrote {}", p.display())?;
        }
        Ok(())
    }
}

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
    crate::output::write_atomic(&dir.join("README.md"), md.as_bytes())
}

/// A seed for repetition `rep` of stream `tag`, derived from `base` (SplitMix64): the
/// same for any number of threads.
pub fn derive_seed(base: u64, tag: &str, rep: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = base
        .wrapping_add(h)
        .wrapping_add(rep.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` evenly spaced values from `start` to `stop` inclusive (numpy's `linspace`).
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![start],
        _ => (0..n)
            .map(|i| start + (stop - start) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// Mean and population standard deviation (ddof = 0) of the finite values; NaN if none.
pub fn mean_std(v: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
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

/// clap value parser: an integer >= 1.
pub fn positive_usize(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("must be an integer >= 1, got {s}")),
    }
}

/// Kolmogorov–Smirnov distance `sup |F_n − F|` between the empirical CDF of `samples`
/// and the CDF `cdf`, with the asymptotic p-value.
pub fn ks_test(samples: &[f64], cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    let mut s: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let mut d: f64 = 0.0;
    for (i, &x) in s.iter().enumerate() {
        let f = cdf(x);
        d = d.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n);
    }
    (d, kolmogorov_p(d, s.len()))
}

/// Asymptotic p-value of the KS statistic `d` for `n` samples (Stephens' correction).
pub fn kolmogorov_p(d: f64, n: usize) -> f64 {
    let sn = (n as f64).sqrt();
    let l = (sn + 0.12 + 0.11 / sn) * d;
    if l < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for j in 1..=100 {
        let j = j as f64;
        let term = 2.0 * (-1f64).powf(j - 1.0) * (-2.0 * j * j * l * l).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(linspace(0.5, 1.0, 5), vec![0.5, 0.625, 0.75, 0.875, 1.0]);
        assert_eq!(linspace(0.5, 3.0, 6), vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    }

    #[test]
    fn linspace_parses() {
        let l: Linspace = "0.5,1,5".parse().unwrap();
        assert_eq!(l.values().len(), 5);
        assert!("0.5,1".parse::<Linspace>().is_err());
    }

    #[test]
    fn ks_of_uniform_grid_is_small() {
        let s: Vec<f64> = (0..1000).map(|i| (i as f64 + 0.5) / 1000.0).collect();
        let (d, p) = ks_test(&s, |x| x.clamp(0.0, 1.0));
        assert!(d <= 0.0005 + 1e-12, "{d}");
        assert!(p > 0.99);
        let (d, p) = ks_test(&s, |x| (x * x).clamp(0.0, 1.0));
        assert!(d > 0.2 && p < 1e-6);
    }

    #[test]
    fn seeds_differ_by_rep_and_tag() {
        assert_ne!(derive_seed(0, "a", 0), derive_seed(0, "a", 1));
        assert_ne!(derive_seed(0, "a", 0), derive_seed(0, "b", 0));
        assert_eq!(derive_seed(3, "a", 7), derive_seed(3, "a", 7));
    }
}
