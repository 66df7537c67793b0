//! The report of table1: its tables, figures and README section.

use super::*;

/// The paper's test MSE × 100 (mean, std over 10 runs) for `(k, method)`, as quoted in
/// Table 1 of Sahoo et al. (ICLR 2023) from Niepert et al. (2021); None where not
/// transcribed here.
pub fn paper_mse(k: usize, m: Method) -> Option<(f64, f64)> {
    Some(match (k, m) {
        (5, Method::ImleSog) => (2.62, 0.05),
        (10, Method::ImleSog) => (2.71, 0.10),
        (15, Method::ImleSog) => (2.91, 0.18),
        (5, Method::L2x) => (5.75, 0.30),
        (10, Method::L2x) => (6.68, 1.08),
        (15, Method::L2x) => (7.71, 0.64),
        (5, Method::Softsub) => (2.57, 0.12),
        (10, Method::Softsub) => (2.67, 0.14),
        (15, Method::Softsub) => (2.52, 0.07),
        _ => return None,
    })
}

/// One row of the table: `(k, method)` over its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// k.
    pub k: usize,
    /// Method name.
    pub method: String,
    /// Label.
    pub label: String,
    /// The estimator.
    pub spec: EstimatorSpec,
    /// Runs with all epochs done / configured.
    pub runs_done: usize,
    /// Runs configured.
    pub runs: usize,
    /// Test MSE × 100 at the best-validation epoch: mean, std (population) over runs.
    pub mse_x100: (f64, f64),
    /// Subset precision × 100 at the best-validation epoch: mean, std.
    pub precision_x100: (f64, f64),
    /// The paper's test MSE × 100.
    pub paper_mse_x100: Option<(f64, f64)>,
    /// Median seconds per training epoch.
    pub epoch_seconds: f64,
    /// Rayon threads of the epochs.
    pub threads: Vec<usize>,
}

fn rows(units: &[(String, Option<RunResult>)]) -> Vec<Row> {
    let mut keys: Vec<(usize, Method)> = Vec::new();
    for r in units.iter().filter_map(|(_, u)| u.as_ref()) {
        let key = (r.config.k, r.config.method);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.iter()
        .map(|&(k, m)| {
            let of: Vec<&RunResult> = units
                .iter()
                .filter_map(|(_, u)| u.as_ref())
                .filter(|r| r.config.k == k && r.config.method == m)
                .collect();
            let done: Vec<&&RunResult> = of.iter().filter(|r| r.complete).collect();
            let best: Vec<&EpochRecord> = done.iter().filter_map(|r| r.best()).collect();
            let mut threads: Vec<usize> = of
                .iter()
                .flat_map(|r| r.epochs.iter().map(|e| e.threads))
                .collect();
            threads.sort_unstable();
            threads.dedup();
            Row {
                k,
                method: m.name().into(),
                label: m.label().into(),
                spec: of[0].config.spec.clone(),
                runs_done: done.len(),
                runs: units
                    .iter()
                    .filter(|(n, _)| n.starts_with(&format!("k{k}/{}/", m.name())))
                    .count(),
                mse_x100: mean_std(best.iter().map(|e| 100.0 * e.eval("test_mse"))),
                precision_x100: mean_std(best.iter().map(|e| 100.0 * e.eval("precision"))),
                paper_mse_x100: paper_mse(k, m),
                epoch_seconds: median(
                    of.iter()
                        .flat_map(|r| r.epochs.iter().map(|e| e.train_seconds)),
                ),
                threads,
            }
        })
        .collect()
}

/// Table 1's report: `table1.csv` (one row per k and method), `table1_runs.csv` (per
/// run), `table1.png` (validation MSE and precision per epoch at k = 10),
/// `table1_explanations.png` (selected words per method), record and README section.
pub fn report(
    cfg: &Config,
    units: &[(String, Option<RunResult>)],
    _ctx: &RunContext,
) -> Result<Report> {
    let rows = rows(units);
    let table = Table::new()
        .i64("k", rows.iter().map(|r| r.k as i64).collect())
        .str("method", rows.iter().map(|r| r.method.clone()).collect())
        .str("label", rows.iter().map(|r| r.label.clone()).collect())
        .i64(
            "runs_done",
            rows.iter().map(|r| r.runs_done as i64).collect(),
        )
        .i64("runs", rows.iter().map(|r| r.runs as i64).collect())
        .f64("mse_x100_mean", rows.iter().map(|r| r.mse_x100.0).collect())
        .f64("mse_x100_std", rows.iter().map(|r| r.mse_x100.1).collect())
        .f64(
            "precision_x100_mean",
            rows.iter().map(|r| r.precision_x100.0).collect(),
        )
        .f64(
            "precision_x100_std",
            rows.iter().map(|r| r.precision_x100.1).collect(),
        )
        .f64(
            "paper_mse_x100_mean",
            rows.iter()
                .map(|r| r.paper_mse_x100.map_or(f64::NAN, |p| p.0))
                .collect(),
        )
        .f64(
            "paper_mse_x100_std",
            rows.iter()
                .map(|r| r.paper_mse_x100.map_or(f64::NAN, |p| p.1))
                .collect(),
        )
        .f64(
            "epoch_seconds",
            rows.iter().map(|r| r.epoch_seconds).collect(),
        );
    let done: Vec<&RunResult> = units.iter().filter_map(|(_, u)| u.as_ref()).collect();
    let best: Vec<Option<&EpochRecord>> = done.iter().map(|r| r.best()).collect();
    let get = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<f64> {
        best.iter().map(|b| b.map_or(f64::NAN, f)).collect()
    };
    let runs_table = Table::new()
        .i64("k", done.iter().map(|r| r.config.k as i64).collect())
        .str(
            "method",
            done.iter()
                .map(|r| r.config.method.name().to_string())
                .collect(),
        )
        .i64("run", done.iter().map(|r| r.config.run as i64).collect())
        .bool("complete", done.iter().map(|r| r.complete).collect())
        .i64(
            "epochs_done",
            done.iter().map(|r| r.epochs.len() as i64).collect(),
        )
        .i64(
            "best_epoch",
            best.iter()
                .map(|b| b.map_or(0, |e| e.epoch as i64))
                .collect(),
        )
        .f64("val_mse", get(&|e| e.eval("val_mse")))
        .f64("test_mse", get(&|e| e.eval("test_mse")))
        .f64("precision", get(&|e| e.eval("precision")));

    // Curves at k = 10 (or the first k), mean over runs per epoch.
    let k_plot = if rows.iter().any(|r| r.k == 10) {
        10
    } else {
        rows.first().map_or(10, |r| r.k)
    };
    let groups: Vec<(String, usize, Vec<&[EpochRecord]>)> = Method::ALL
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let runs = done
                .iter()
                .filter(|r| r.config.k == k_plot && r.config.method == *m)
                .map(|r| r.epochs.as_slice())
                .collect();
            (m.label().to_string(), i, runs)
        })
        .collect();
    let charts = crate::experiments::epoch_charts(
        &groups,
        &[
            (
                format!("validation MSE × 100 (k = {k_plot})"),
                "MSE × 100",
                "val_mse",
            ),
            (
                format!("subset precision × 100 (k = {k_plot})"),
                "precision × 100",
                "precision",
            ),
        ],
    );
    let mut figures = vec![(
        "table1".to_string(),
        Figure::rows(vec![charts], (1100, 430))
            .title("Table 1 — learning to explain: per-epoch validation MSE and subset precision"),
    )];
    let panels: Vec<Vec<Panel>> = Method::ALL
        .iter()
        .filter_map(|m| {
            let r = done.iter().find(|r| r.config.k == k_plot && r.config.method == *m && r.config.run == 0)?;
            let ex = r.examples.as_ref()?;
            Some(vec![Panel::Words(WordPanel {
                title: format!("{} (k = {k_plot}): selected ∩ rationale green, selected only red, missed rationale underlined", m.label()),
                texts: ex.iter().take(2).cloned().collect(),
            })])
        })
        .collect();
    if !panels.is_empty() {
        let n = panels.len() as u32;
        figures.push((
            "table1_explanations".to_string(),
            Figure::rows(panels, (1200, 190 * n))
                .title("Selected words of two annotated test reviews"),
        ));
    }

    let data_note = match &cfg.generated {
        Some(g) => format!(
            "**Data: the generated look-alike set** (`imle-paper data generate beer --seed {}`: {} training, {} held-out, {} annotated reviews; see `datasets/beer/README.md`), **not the BeerAdvocate reviews** — the paper's numbers beside ours are for the real data and are not comparable in value, only in ranking.",
            g.seed, g.train, g.heldout, g.annotated
        ),
        None => "Data: the user's BeerAdvocate-layout files.".into(),
    };
    let c0 = cfg.runs.first();
    let mut md = template::fill(
        include_str!("../prose/table1_intro.md"),
        &[
            ("data_note", data_note),
            ("maxlen", c0.map_or(0, |c| c.maxlen).to_string()),
            ("epochs", c0.map_or(0, |c| c.epochs).to_string()),
            ("batch", c0.map_or(0, |c| c.batch).to_string()),
        ],
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {}/{} | {} | {} | {} | {:.1} |\n",
            r.k,
            r.label,
            r.runs_done,
            r.runs,
            pm(r.mse_x100, 2),
            pm(r.precision_x100, 2),
            r.paper_mse_x100.map_or("–".into(), |p| pm(p, 2)),
            r.epoch_seconds
        ));
    }
    md.push_str(&template::fill(
        include_str!("../prose/table1_notes.md"),
        &[],
    ));
    let lines = rows
        .iter()
        .map(|r| {
            format!(
                "k = {:>2} {:<26} MSE×100 {:<14} precision×100 {:<14} ({}/{} runs)",
                r.k,
                r.label,
                pm(r.mse_x100, 2),
                pm(r.precision_x100, 2),
                r.runs_done,
                r.runs
            )
        })
        .collect();
    Ok(Report {
        data: serde_json::json!({ "runs": done }),
        summary: serde_json::to_value(&rows)?,
        tables: vec![("table1".into(), table), ("table1_runs".into(), runs_table)],
        figures,
        readme: md,
        lines,
    })
}
