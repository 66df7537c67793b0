//! The runner of every experiment: its units computed (all, a shard, or none for a
//! report), each finished unit saved in the run folder with its configuration, seed and
//! data identity and read back instead of computed again, then the report written.

use super::*;

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
