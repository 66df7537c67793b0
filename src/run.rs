//! Where and how a run happens: the profile, the run context, run modes (shards,
//! report-only) and the seeds every experiment derives its randomness from.
//!
//! This module depends on nothing else in the crate: [`crate::output`] and
//! [`crate::experiments`] build on it.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// Part `index` (from 1) of `count` parts of an experiment's grid of runs
/// (`--shard 3/8`): unit `u` (from 0) belongs to part `u % count + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which part, `1..=count`.
    pub index: usize,
    /// Number of parts.
    pub count: usize,
}

impl Shard {
    /// Whether unit number `unit` (from 0) is in this part.
    pub fn contains(&self, unit: usize) -> bool {
        unit % self.count + 1 == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("expected I/N with 1 <= I <= N (e.g. 3/8), got '{s}'");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where and how an experiment runs: output folder, run folder, profile, seed, mode.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Output folder of the figures, tables and records (created if needed).
    pub out_dir: PathBuf,
    /// Folder of the experiment's resumable state (checkpoints, finished units);
    /// `None`: `runs/<experiment>/<profile>`.
    pub run_dir: Option<PathBuf>,
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
    /// Run only this part of the grid (no report).
    pub shard: Option<Shard>,
    /// Compute nothing: report the units that have finished.
    pub report_only: bool,
    /// Delete the saved state of the units to run and start them afresh (otherwise finished
    /// units are read back, not computed again).
    pub fresh: bool,
}

impl RunContext {
    /// A context for notebooks and tests: quick profile, seed 0, no progress bars.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            run_dir: None,
            profile: Profile::Quick,
            seed: 0,
            threads: None,
            command: "(library call)".into(),
            progress: false,
            shard: None,
            report_only: false,
            fresh: false,
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
    /// Sets the run folder.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// The run folder of `experiment`: `--run-dir`, or `runs/<experiment>/<profile>`.
    pub fn run_dir_of(&self, experiment: &str) -> PathBuf {
        self.run_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("runs/{experiment}/{}", self.profile)))
    }

    /// A progress bar of `len` steps (hidden when progress is off or stderr is not a
    /// terminal).
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        progress_bar(self.progress, len, what)
    }

    /// `out_dir/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }
}

/// A progress bar of `len` steps labelled `what`, or a hidden one.
pub fn progress_bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
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

/// Prints a line above a visible progress bar, or on stdout.
pub fn log_line(pb: &ProgressBar, line: &str) {
    if pb.is_hidden() {
        println!("{line}");
    } else {
        pb.println(line);
    }
}

/// Keeps freed memory in the process instead of returning it to the system: glibc's
/// `mallopt` with an mmap threshold of 256 MiB and a trim threshold of 1 GiB (on other
/// platforms: nothing). A training step allocates and frees tensors of a few MiB (dfdx
/// allocates every op's output afresh); by default glibc serves them with `mmap` or trims
/// them away after each free, so every step faults and zeroes its pages again. Measured on
/// Table 1's step (2 threads): 6.5 s → 4.4 s per epoch, the same numbers. Call once at
/// start-up (the CLI does).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
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

/// A seed for repetition `rep` of stream `tag`, derived from `base`: the same for any
/// number of threads.
pub fn derive_seed(base: u64, tag: &str, rep: u64) -> u64 {
    use imle::seed::{fnv1a, splitmix64, GOLDEN};
    splitmix64(
        base.wrapping_add(fnv1a(tag))
            .wrapping_add(rep.wrapping_mul(GOLDEN)),
    )
}

/// Salt of the training streams ([`stream_seed`]), apart from the ops' call seeds.
const TRAIN_SALT: u64 = 0x6A09_E667_F3BC_C909;

/// The seed of the training stream `tag` (initialisation, shuffle, noise, ...) of a run
/// seeded with `run`.
pub fn tag_seed(run: u64, tag: u64) -> u64 {
    imle::seed::mix(run, tag, TRAIN_SALT)
}

/// The seed of item `item` (a batch, a test batch) of epoch `epoch` of the training
/// stream `tag` of a run seeded with `run`.
pub fn stream_seed(run: u64, tag: u64, epoch: usize, item: usize) -> u64 {
    use imle::seed::mix;
    mix(
        mix(tag_seed(run, tag), epoch as u64, TRAIN_SALT),
        item as u64,
        TRAIN_SALT,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_rep_and_tag() {
        assert_ne!(derive_seed(0, "a", 0), derive_seed(0, "a", 1));
        assert_ne!(derive_seed(0, "a", 0), derive_seed(0, "b", 0));
        assert_eq!(derive_seed(3, "a", 7), derive_seed(3, "a", 7));
        assert_ne!(stream_seed(0, 1, 1, 0), stream_seed(0, 1, 1, 1));
        assert_ne!(stream_seed(0, 1, 1, 0), stream_seed(0, 2, 1, 0));
    }

    #[test]
    fn shards_partition_the_units() {
        let shards: Vec<Shard> = (1..=3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for u in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.contains(u)).count(), 1);
        }
        for bad in ["0/3", "4/3", "1/0", "x/2", "2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
