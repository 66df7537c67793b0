//! `imle-paper`: regenerate the figures and tables of the I-MLE paper.
//!
//! `cargo run --release -- all` runs every experiment in the quick profile and writes
//! JSON, CSV, PNG and SVG files plus `README.md` into `figures/`. See `--help`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use imle_paper::experiments::{self, fidelity, fig2, fig3, fig4, Profile, RunContext, Summary};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Regenerate the figures and tables of "Implicit MLE" (Niepert, Minervini, Franceschi,
/// NeurIPS 2021).
///
/// Each command writes <name>.json (config, seed, per-step values, summary), CSV tables,
/// <name>.png and <name>.svg into --out (figures/ for --full, figures/quick/ for the quick
/// profile), and regenerates <out>/README.md (the paper's
/// numbers beside ours). The same seed gives the same numbers.
#[derive(Debug, Parser)]
#[command(
    name = "imle-paper",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Global {
    /// Quick profile (the default): the paper's protocol with fewer repetitions/steps.
    #[arg(long, global = true, conflicts_with = "full")]
    quick: bool,
    /// Full profile: the paper's protocol.
    #[arg(long, global = true)]
    full: bool,
    /// Base seed; every repetition derives its seed from it.
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// Worker threads (rayon); results do not depend on it. Default: all cores.
    #[arg(long, global = true, value_parser = experiments::positive_usize)]
    threads: Option<usize>,
    /// Output folder [full: figures/; quick: figures/quick/, so that quick runs never
    /// touch the committed full-protocol results].
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Replace a record of a stronger protocol (a full-protocol `<name>.json` in --out)
    /// with this run's; without it such a run stops before writing anything.
    #[arg(long, global = true)]
    overwrite: bool,
    /// Hide progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Figure 2 (Sec. 3.2): sums of Gumbel vs Sum-of-Gamma noise, with KS distances.
    Fig2(fig2::Args),
    /// Figure 3 (Sec. 6): the synthetic 5-subset experiment (curves and heat map).
    Fig3(fig3::Args),
    /// Beyond the paper: bias and cosine of I-MLE, STE and SFE against the exact gradient.
    Fidelity(fidelity::Args),
    /// Figure 4 (Sec. 6): the discrete 10-subset VAE on MNIST (resumable training).
    Fig4(fig4::Args),
    /// Data sets: `data fetch mnist` downloads MNIST and checks its MD5s.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Every figure and table (with default settings for the chosen profile).
    All,
    /// Regenerate <out>/README.md from the JSON records present.
    Readme,
}

#[derive(Debug, Subcommand)]
enum DataAction {
    /// Download a data set into --data-dir [datasets/<name>] and verify its checksums.
    Fetch {
        /// Which data set (only `mnist`).
        #[arg(value_parser = ["mnist"])]
        name: String,
        /// Target directory [datasets/mnist].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn run_one(f: impl FnOnce() -> Result<Summary>) -> Result<()> {
    let t = Instant::now();
    let summary = f()?;
    print!("{summary}");
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    Ok(())
}

fn run_all(ctx: &RunContext, overwrite: bool) -> Result<()> {
    for name in ["fig2", "fig3", "fidelity", "fig4"] {
        experiments::check_replaces(&ctx.out_dir, name, ctx.profile, overwrite)?;
    }
    run_one(|| fig2::run(&fig2::Args::default().resolve(ctx.profile)?, ctx))?;
    run_one(|| fig3::run(&fig3::Args::default().resolve(ctx.profile)?, ctx))?;
    run_one(|| fidelity::run(&fidelity::Args::default().resolve(ctx.profile)?, ctx))?;
    // Figure 4 needs MNIST: skipped with a clear message when it is missing.
    match imle_paper::data::mnist::locate(None) {
        Ok(_) => run_one(|| fig4::run(&fig4::Args::default().resolve(ctx.profile)?, ctx))?,
        Err(e) => println!("== fig4 == skipped: {e}"),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let g = cli.global;
    if let Some(n) = g.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up the thread pool")?;
    }
    let profile = if g.full {
        Profile::Full
    } else {
        Profile::Quick
    };
    let command = std::env::args()
        .skip(1)
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let out = g
        .out
        .clone()
        .unwrap_or_else(|| experiments::default_out(profile));
    let experiment = match &cli.command {
        Command::Fig2(_) => Some("fig2"),
        Command::Fig3(_) => Some("fig3"),
        Command::Fidelity(_) => Some("fidelity"),
        Command::Fig4(_) => Some("fig4"),
        _ => None,
    };
    if let Some(name) = experiment {
        experiments::check_replaces(&out, name, profile, g.overwrite)?;
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating output folder {}", out.display()))?;
    let ctx = RunContext {
        out_dir: out.clone(),
        profile,
        seed: g.seed,
        threads: g.threads,
        command,
        progress: !g.no_progress && std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::Fig2(a) => run_one(|| fig2::run(&a.resolve(profile)?, &ctx)),
        Command::Fig3(a) => run_one(|| fig3::run(&a.resolve(profile)?, &ctx)),
        Command::Fidelity(a) => run_one(|| fidelity::run(&a.resolve(profile)?, &ctx)),
        Command::Fig4(a) => run_one(|| fig4::run(&a.resolve(profile)?, &ctx)),
        Command::Data {
            action: DataAction::Fetch { data_dir, .. },
        } => {
            let dir = data_dir.unwrap_or_else(|| PathBuf::from("datasets/mnist"));
            imle_paper::data::mnist::fetch(&dir, |l| println!("{l}"))?;
            println!("MNIST ready in {}", dir.display());
            Ok(())
        }
        Command::All => run_all(&ctx, g.overwrite),
        Command::Readme => {
            experiments::write_readme(&out)?;
            println!("wrote {}", out.join("README.md").display());
            Ok(())
        }
    }
}
