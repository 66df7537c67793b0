//! `imle-paper`: regenerate the figures and tables of the I-MLE paper.
//!
//! `cargo run --release -- all` runs every experiment in the quick profile and writes
//! JSON, CSV, PNG and SVG files plus `README.md` into `figures/`. See `--help`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use imle_paper::experiments::{self, fidelity, fig2, fig3, fig4, table1, table2, Experiment};
use imle_paper::run::{Profile, RunContext, Shard, Summary};
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
    /// Folder of the resumable state (checkpoints, finished units)
    /// [runs/<experiment>/<profile>].
    #[arg(long, global = true)]
    run_dir: Option<PathBuf>,
    /// Run only part I of N of the experiment's grid of runs (e.g. 3/8; a Slurm array
    /// task runs `--shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT`); no report:
    /// merge the finished parts with --report-only.
    #[arg(long, global = true)]
    shard: Option<Shard>,
    /// Compute nothing: draw the figures and tables from the units (and checkpoints) that
    /// have finished in the run folder.
    #[arg(long, global = true, conflicts_with = "shard")]
    report_only: bool,
    /// Delete the saved state (finished units, checkpoints) of the runs to do and start
    /// them afresh (without it, finished units are read back, or restored from the
    /// committed record, and unfinished training resumes from its checkpoint).
    #[arg(long, global = true, conflicts_with = "report_only")]
    fresh: bool,
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
    /// Table 1 (Sec. 6): learning to explain, k-subset selection of review words (resumable
    /// training; `--eval CHECKPOINT` evaluates a kept model).
    Table1(table1::Args),
    /// Table 2 (Sec. 6): shortest paths on Warcraft terrain maps through Dijkstra (BB,
    /// I-MLE, DPO; resumable training; `--eval CHECKPOINT` evaluates a kept model).
    Table2(table2::Args),
    /// Data sets: `data list` shows where each is found, `data fetch mnist` downloads MNIST
    /// and checks its MD5s, `data generate beer` / `data generate warcraft --k K` write the
    /// look-alike review set / terrain maps.
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
    /// Every data set: what it is, which experiments use it, where it is found.
    List,
    /// Download a data set into --data-dir [datasets/<name>] and verify its checksums.
    Fetch {
        /// Which data set (only `mnist`).
        #[arg(value_parser = ["mnist"])]
        name: String,
        /// Target directory [datasets/mnist].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Generate a data set in the real files' layout: `beer` (BeerAdvocate-like reviews
    /// with rationales, embeddings) or `warcraft` (terrain maps with costs and shortest
    /// paths, one KxK folder); the same seed gives the same files.
    Generate {
        /// Which data set.
        #[arg(value_parser = ["beer", "warcraft"])]
        name: String,
        /// Target directory [datasets/beer; datasets/warcraft/KxK].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Seed (beer: of the reviews; the embeddings keep their own seed, 0, so that every
        /// generated set shares one word space).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Training reviews / maps [beer: 2500; warcraft: 10000].
        #[arg(long, value_parser = experiments::positive_usize)]
        train: Option<usize>,
        /// beer: held-out reviews (split 50/50 into validation and test per run) [1500].
        #[arg(long, value_parser = experiments::positive_usize)]
        heldout: Option<usize>,
        /// beer: annotated reviews (subset precision) [400].
        #[arg(long, value_parser = experiments::positive_usize)]
        annotated: Option<usize>,
        /// warcraft: grid size K [12].
        #[arg(long, value_parser = experiments::positive_usize)]
        k: Option<usize>,
        /// warcraft: validation maps [1000].
        #[arg(long, value_parser = experiments::positive_usize)]
        val: Option<usize>,
        /// warcraft: test maps [1000].
        #[arg(long, value_parser = experiments::positive_usize)]
        test: Option<usize>,
    },
}

fn print_summary(started: Instant, summary: Result<Summary>) -> Result<()> {
    print!("{}", summary?);
    println!("  ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_cli<E: Experiment>(args: &E::Args, ctx: &RunContext) -> Result<()> {
    print_summary(Instant::now(), experiments::run_with_args::<E>(args, ctx))
}

fn data_list() {
    for ds in imle_paper::data::DATASETS {
        println!(
            "{}: {} (used by {})",
            ds.name,
            ds.description,
            ds.used_by.join(", ")
        );
        match ds.locate(None) {
            Ok(dir) => println!("  found in {}", dir.display()),
            Err(e) => println!("  {}", e.to_string().replace('\n', "\n  ")),
        }
    }
}

fn main() -> std::process::ExitCode {
    end_quietly_on_a_closed_pipe();
    imle_paper::run::tune_allocator();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `imle-paper ... | head`: when the reader closes the pipe, the next write ends the
/// process as it does any Unix tool (SIGPIPE), instead of Rust's default of ignoring the
/// signal and panicking in `println!`. Nothing finished is lost: units and checkpoints
/// are written before the lines that report them.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
        .unwrap_or_else(|| imle_paper::run::default_out(profile));
    let experiment = match &cli.command {
        Command::Fig2(_) => Some(fig2::Fig2::NAME),
        Command::Fig3(_) => Some(fig3::Fig3::NAME),
        Command::Fidelity(_) => Some(fidelity::Fidelity::NAME),
        Command::Fig4(_) => Some(fig4::Fig4::NAME),
        Command::Table1(ref a) if a.eval.is_none() => Some(table1::Table1::NAME),
        Command::Table2(ref a) if a.eval.is_none() => Some(table2::Table2::NAME),
        _ => None,
    };
    if let Some(name) = experiment {
        if g.shard.is_none() {
            experiments::check_replaces(&out, name, profile, g.overwrite)?;
        }
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
        run_dir: g.run_dir.clone(),
        shard: g.shard,
        report_only: g.report_only,
        fresh: g.fresh,
    };
    match cli.command {
        Command::Fig2(a) => run_cli::<fig2::Fig2>(&a, &ctx),
        Command::Fig3(a) => run_cli::<fig3::Fig3>(&a, &ctx),
        Command::Fidelity(a) => run_cli::<fidelity::Fidelity>(&a, &ctx),
        Command::Fig4(a) => run_cli::<fig4::Fig4>(&a, &ctx),
        Command::Table1(a) => match &a.eval {
            Some(ck) => {
                for line in table1::evaluate_checkpoint(ck, a.data_dir.as_deref())? {
                    println!("{line}");
                }
                Ok(())
            }
            None => run_cli::<table1::Table1>(&a, &ctx),
        },
        Command::Table2(a) => match &a.eval {
            Some(ck) => {
                for line in table2::evaluate_checkpoint(ck, a.data_dir.as_deref())? {
                    println!("{line}");
                }
                Ok(())
            }
            None => run_cli::<table2::Table2>(&a, &ctx),
        },
        Command::Data {
            action:
                DataAction::Generate {
                    name,
                    data_dir,
                    seed,
                    train,
                    heldout,
                    annotated,
                    k,
                    val,
                    test,
                },
        } => {
            let files = if name == "warcraft" {
                if heldout.is_some() || annotated.is_some() {
                    anyhow::bail!("--heldout and --annotated are options of beer; warcraft has --val and --test");
                }
                let d = imle_paper::data::warcraft::generate::GeneratorConfig::new(k.unwrap_or(12));
                let cfg = imle_paper::data::warcraft::generate::GeneratorConfig {
                    seed,
                    train: train.unwrap_or(d.train),
                    val: val.unwrap_or(d.val),
                    test: test.unwrap_or(d.test),
                    ..d
                };
                let dir = data_dir
                    .unwrap_or_else(|| PathBuf::from(format!("datasets/warcraft/{0}x{0}", cfg.k)));
                imle_paper::data::warcraft::generate::write(&cfg, &dir)?
            } else {
                if k.is_some() || val.is_some() || test.is_some() {
                    anyhow::bail!("--k, --val and --test are options of warcraft; beer has --heldout and --annotated");
                }
                let d = imle_paper::data::beer::generate::GeneratorConfig::default();
                let cfg = imle_paper::data::beer::generate::GeneratorConfig {
                    seed,
                    train: train.unwrap_or(d.train),
                    heldout: heldout.unwrap_or(d.heldout),
                    annotated: annotated.unwrap_or(d.annotated),
                    ..d
                };
                let dir = data_dir.unwrap_or_else(|| PathBuf::from("datasets/beer"));
                imle_paper::data::beer::generate::write(&cfg, &dir)?
            };
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Data {
            action: DataAction::List,
        } => {
            data_list();
            Ok(())
        }
        Command::Data {
            action: DataAction::Fetch { data_dir, .. },
        } => {
            let dir = data_dir.unwrap_or_else(|| PathBuf::from("datasets/mnist"));
            imle_paper::data::mnist::fetch(&dir, |l| println!("{l}"))?;
            println!("MNIST ready in {}", dir.display());
            Ok(())
        }
        Command::All => {
            experiments::run_all(&ctx, g.overwrite, |s, started| print_summary(started, s))
        }
        Command::Readme => {
            experiments::write_readme(&out)?;
            println!("wrote {}", out.join("README.md").display());
            Ok(())
        }
    }
}
