//! The report of table2: its tables, figures and README section.

use super::*;

/// The paper's accuracy in % (mean, std over 5 seeds) for `(K, method)`: Table 2 of
/// Niepert et al. (2021) as quoted by the NeSyDM paper's Table 2 (its "I-MLE" row, the
/// μ-μ setting, at 12 x 12 and 30 x 30); None where not transcribed here (the paper's other
/// rows and sizes could not be checked against a source available to us).
pub fn paper_accuracy(k: usize, m: Method) -> Option<(f64, f64)> {
    Some(match (m, k) {
        (Method::ImleMumu, 12) => (97.2, 0.5),
        (Method::ImleMumu, 30) => (93.7, 0.6),
        _ => return None,
    })
}

/// The official code's own results on the real maps for `(K, method)`: `(accuracy, exact)`
/// in %, each (mean, sample std) over its 5 seeds after the last epoch, from the logs in
/// nec-research/tf-imle `WARCRAFT/logs/warcraft/` of the runs with the paper's settings
/// (BB: `temperature_beaker_v10`, mode 0, λ 20, no noise; M-M: `v8`, mode 1, λ 50, no noise;
/// μ-μ: `v11`, mode 4, λ 10, SoG both sides, temperature 1; DPO: `v14`, Fenchel-Young,
/// σ 0.01; the direct baseline: `baseline_beaker_v12`, a whole ResNet18, 150 epochs), as
/// `scripts/tf_imle_warcraft_logs.py` prints them. The μ-μ row at K = 12 is the paper's
/// 97.2 ± 0.5. None for our additions (`imle-sog-hamming`, AIMLE).
pub fn official_logs(k: usize, m: Method) -> Option<[(f64, f64); 2]> {
    let by_k = |rows: [[(f64, f64); 2]; 4]| {
        let i = warcraft::PAPER_SIZES.iter().position(|&s| s == k)?;
        Some(rows[i])
    };
    match m {
        Method::Bb => by_k([
            [(95.2, 0.7), (86.0, 1.1)],
            [(94.7, 0.4), (76.3, 0.9)],
            [(93.8, 0.3), (71.5, 1.2)],
            [(93.6, 0.5), (66.0, 1.5)],
        ]),
        Method::ImleMm => by_k([
            [(95.2, 0.3), (85.1, 0.6)],
            [(94.4, 0.5), (75.0, 0.5)],
            [(93.2, 0.2), (70.5, 1.3)],
            [(93.7, 0.6), (65.8, 0.9)],
        ]),
        Method::ImleMumu => by_k([
            [(97.2, 0.5), (17.1, 0.9)],
            [(95.8, 0.7), (5.1, 0.7)],
            [(94.3, 1.0), (2.4, 0.2)],
            [(93.6, 0.4), (1.0, 0.5)],
        ]),
        Method::Dpo => by_k([
            [(94.8, 0.3), (86.0, 0.9)],
            [(92.3, 0.8), (77.4, 0.8)],
            [(91.5, 0.4), (73.5, 0.7)],
            [(91.5, 0.8), (69.1, 0.8)],
        ]),
        Method::Resnet => by_k([
            [(46.6, 4.0), (44.4, 3.7)],
            [(11.0, 2.1), (10.0, 2.0)],
            [(0.7, 0.3), (0.6, 0.2)],
            [(0.1, 0.1), (0.0, 0.0)],
        ]),
        _ => None,
    }
}

/// One row of the table: `(K, method)` over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// K.
    pub k: usize,
    /// Method name.
    pub method: String,
    /// Label.
    pub label: String,
    /// Supervised by the true costs (not only the paths).
    pub cost_supervised: bool,
    /// The estimator.
    pub spec: Option<EstimatorSpec>,
    /// Epochs configured.
    pub epochs: usize,
    /// Training maps used (None: all of the user's files).
    pub train_maps: Option<usize>,
    /// Runs with all epochs done / configured.
    pub runs_done: usize,
    /// Runs configured.
    pub runs: usize,
    /// Test accuracy × 100 after the last epoch: mean, std (population) over done runs.
    pub accuracy: (f64, f64),
    /// Exact path match × 100.
    pub exact: (f64, f64),
    /// Mean relative regret × 100.
    pub regret: (f64, f64),
    /// The paper's accuracy.
    pub paper_accuracy: Option<(f64, f64)>,
    /// The official code's logs on the real maps: accuracy and exact match, see
    /// [`official_logs`].
    #[serde(default)]
    pub official: Option<[(f64, f64); 2]>,
    /// Median seconds per training epoch.
    pub epoch_seconds: f64,
    /// Unfinished runs: `(epochs done, test accuracy × 100 after the last of them)`.
    pub in_progress: Vec<(usize, f64)>,
}

fn rows(cfg: &Config, units: &[(String, Option<RunResult>)]) -> Vec<Row> {
    let mut keys: Vec<(usize, Method)> = Vec::new();
    for c in &cfg.runs {
        if !keys.contains(&(c.k, c.method)) {
            keys.push((c.k, c.method));
        }
    }
    keys.iter()
        .filter_map(|&(k, m)| {
            let of: Vec<&RunResult> = units
                .iter()
                .filter_map(|(_, u)| u.as_ref())
                .filter(|r| r.config.k == k && r.config.method == m)
                .collect();
            let first = cfg.runs.iter().find(|c| c.k == k && c.method == m)?;
            let done: Vec<&EpochRecord> = of
                .iter()
                .filter(|r| r.complete)
                .filter_map(|r| r.last())
                .collect();
            let train_maps = cfg
                .generated
                .iter()
                .find(|(kk, _)| *kk == k)
                .and_then(|(_, g)| g.as_ref().map(|g| g.config.train))
                .map_or(first.train_subset, |n| {
                    Some(first.train_subset.map_or(n, |s| s.min(n)))
                });
            Some(Row {
                k,
                method: m.name().into(),
                label: m.label().into(),
                cost_supervised: m.cost_supervised(),
                spec: first.spec.clone(),
                epochs: first.epochs,
                train_maps,
                runs_done: done.len(),
                runs: cfg
                    .runs
                    .iter()
                    .filter(|c| c.k == k && c.method == m)
                    .count(),
                accuracy: mean_std(done.iter().map(|e| 100.0 * e.eval("test_accuracy"))),
                exact: mean_std(done.iter().map(|e| 100.0 * e.eval("test_exact"))),
                regret: mean_std(done.iter().map(|e| 100.0 * e.eval("test_regret"))),
                paper_accuracy: paper_accuracy(k, m),
                official: official_logs(k, m),
                in_progress: of
                    .iter()
                    .filter(|r| !r.complete)
                    .filter_map(|r| r.last().map(|e| (e.epoch, 100.0 * e.eval("test_accuracy"))))
                    .collect(),
                epoch_seconds: median(
                    of.iter()
                        .flat_map(|r| r.epochs.iter().map(|e| e.train_seconds)),
                ),
            })
        })
        .collect()
}

/// Table 2's report: `table2.csv` (one row per K and method), `table2_runs.csv` (per
/// run and epoch), `table2.png` (test accuracy per epoch), `table2_paths.png` (test maps
/// with the true and predicted paths), record and README section.
pub fn report(cfg: &Config, units: &[(String, Option<RunResult>)]) -> Result<Report> {
    let rows = rows(cfg, units);
    let f = |g: &dyn Fn(&Row) -> f64| rows.iter().map(g).collect::<Vec<f64>>();
    let opt =
        |v: Option<(f64, f64)>, i: usize| v.map_or(f64::NAN, |p| if i == 0 { p.0 } else { p.1 });
    let table = Table::new()
        .i64("k", rows.iter().map(|r| r.k as i64).collect())
        .str("method", rows.iter().map(|r| r.method.clone()).collect())
        .str("label", rows.iter().map(|r| r.label.clone()).collect())
        .bool(
            "cost_supervised",
            rows.iter().map(|r| r.cost_supervised).collect(),
        )
        .i64("epochs", rows.iter().map(|r| r.epochs as i64).collect())
        .i64(
            "train_maps",
            rows.iter()
                .map(|r| r.train_maps.map_or(-1, |n| n as i64))
                .collect(),
        )
        .i64(
            "runs_done",
            rows.iter().map(|r| r.runs_done as i64).collect(),
        )
        .i64("runs", rows.iter().map(|r| r.runs as i64).collect())
        .f64("accuracy_mean", f(&|r| r.accuracy.0))
        .f64("accuracy_std", f(&|r| r.accuracy.1))
        .f64("exact_mean", f(&|r| r.exact.0))
        .f64("exact_std", f(&|r| r.exact.1))
        .f64("regret_x100_mean", f(&|r| r.regret.0))
        .f64("regret_x100_std", f(&|r| r.regret.1))
        .f64("paper_accuracy_mean", f(&|r| opt(r.paper_accuracy, 0)))
        .f64("paper_accuracy_std", f(&|r| opt(r.paper_accuracy, 1)))
        .f64(
            "official_accuracy_mean",
            f(&|r| r.official.map_or(f64::NAN, |o| o[0].0)),
        )
        .f64(
            "official_accuracy_std",
            f(&|r| r.official.map_or(f64::NAN, |o| o[0].1)),
        )
        .f64(
            "official_exact_mean",
            f(&|r| r.official.map_or(f64::NAN, |o| o[1].0)),
        )
        .f64(
            "official_exact_std",
            f(&|r| r.official.map_or(f64::NAN, |o| o[1].1)),
        )
        .f64("epoch_seconds", f(&|r| r.epoch_seconds));
    let done: Vec<&RunResult> = units.iter().filter_map(|(_, u)| u.as_ref()).collect();
    let per_epoch: Vec<(&RunResult, &EpochRecord)> = done
        .iter()
        .flat_map(|r| r.epochs.iter().map(move |e| (*r, e)))
        .collect();
    let metric = |name: &str| {
        per_epoch
            .iter()
            .map(|(_, e)| e.eval(name))
            .collect::<Vec<f64>>()
    };
    let runs_table = Table::new()
        .i64(
            "k",
            per_epoch.iter().map(|(r, _)| r.config.k as i64).collect(),
        )
        .str(
            "method",
            per_epoch
                .iter()
                .map(|(r, _)| r.config.method.name().to_string())
                .collect(),
        )
        .i64(
            "run",
            per_epoch.iter().map(|(r, _)| r.config.run as i64).collect(),
        )
        .i64(
            "epoch",
            per_epoch.iter().map(|(_, e)| e.epoch as i64).collect(),
        )
        .f64(
            "train_loss",
            per_epoch.iter().map(|(_, e)| e.train("loss")).collect(),
        )
        .f64("val_accuracy", metric("val_accuracy"))
        .f64("test_accuracy", metric("test_accuracy"))
        .f64("test_exact", metric("test_exact"))
        .f64("test_regret", metric("test_regret"))
        .f64(
            "train_seconds",
            per_epoch.iter().map(|(_, e)| e.train_seconds).collect(),
        );

    let k_plot = rows.first().map_or(12, |r| r.k);
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
                format!("test accuracy % (K = {k_plot})"),
                "accuracy %",
                "test_accuracy",
            ),
            (
                format!("exact path match % (K = {k_plot})"),
                "exact %",
                "test_exact",
            ),
        ],
    );
    let mut figures = vec![(
        "table2".to_string(),
        Figure::rows(vec![charts], (1100, 430))
            .title("Table 2 — Warcraft shortest paths: test accuracy and exact match per epoch"),
    )];
    // Paths of the first test maps, every method of run 0 at K = k_plot.
    let with_examples: Vec<&RunResult> = done
        .iter()
        .copied()
        .filter(|r| r.config.k == k_plot && r.config.run == 0 && r.examples.is_some())
        .collect();
    // The picture needs the test maps only: that split alone is read (the configuration
    // has already located or generated the data).
    if let Some(first) = with_examples.first() {
        let dir =
            warcraft::find_or_generate(cfg.data_dir.as_deref(), k_plot, generated_maps(k_plot))?.0;
        let test = warcraft::load_split(&dir, "test", k_plot, &mut Vec::new())?;
        let n = first.examples.as_ref().map_or(0, Vec::len);
        let panels: Vec<Panel> = (0..n)
            .map(|i| {
                Panel::Paths(PathPanel {
                    title: format!("test map {i}: true path outlined"),
                    image: test.map_of(i).to_vec(),
                    px: test.px,
                    k: k_plot,
                    truth: test.path_of(i).to_vec(),
                    paths: with_examples
                        .iter()
                        .filter_map(|r| {
                            Some((
                                r.config.method.label().to_string(),
                                r.examples.as_ref()?.get(i)?.clone(),
                            ))
                        })
                        .collect(),
                })
            })
            .collect();
        let legend = 16 * with_examples.len() as u32;
        figures.push((
            "table2_paths".to_string(),
            Figure::rows(vec![panels], (380 * n as u32, 400 + legend))
                .title("Predicted paths on test maps (last epoch, run 0)"),
        ));
    }

    let data_note = cfg
        .generated
        .iter()
        .map(|(k, g)| match g {
            Some(g) => format!(
                "K = {k}: **generated look-alike maps** (`imle-paper data generate warcraft --k {k} --seed {}`: {} / {} / {} maps, {} with tied optimal paths in the test split; see `datasets/warcraft/README.md`), **not the Warcraft II tiles**",
                g.config.seed, g.config.train, g.config.val, g.config.test, g.tied_maps[2]
            ),
            None => format!("K = {k}: the user's files of the data set"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut md = template::fill(
        include_str!("../prose/table2_intro.md"),
        &[("data_note", data_note)],
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{}{} | {} | {} | {} | {} | {} | {} |\n",
            r.k,
            r.label,
            if r.cost_supervised {
                "**costs**"
            } else {
                "paths"
            },
            r.epochs,
            r.train_maps.map_or("all".into(), |n| n.to_string()),
            r.runs_done,
            r.runs,
            r.in_progress
                .iter()
                .map(|(e, a)| format!("; 1 at epoch {e}: {a:.1} %"))
                .collect::<String>(),
            pm(r.accuracy, 1),
            pm(r.exact, 1),
            pm(r.regret, 2),
            r.paper_accuracy.map_or("–".into(), |p| pm(p, 1)),
            r.official.map_or("–".into(), |[a, e]| format!(
                "{} / {}",
                pm(a, 1),
                pm(e, 1)
            )),
            if r.epoch_seconds.is_finite() {
                format!("{:.0}", r.epoch_seconds)
            } else {
                "–".into()
            }
        ));
    }
    md.push_str(&template::fill(
        include_str!("../prose/table2_notes.md"),
        &[],
    ));
    let lines = rows
        .iter()
        .map(|r| {
            format!(
                "K = {:>2} {:<40} accuracy {:<14} exact {:<14} ({}/{} runs, {} epochs)",
                r.k,
                r.label,
                pm(r.accuracy, 1),
                pm(r.exact, 1),
                r.runs_done,
                r.runs,
                r.epochs
            )
        })
        .collect();
    Ok(Report {
        data: serde_json::json!({ "runs": done }),
        summary: serde_json::to_value(&rows)?,
        tables: vec![("table2".into(), table), ("table2_runs".into(), runs_table)],
        figures,
        readme: md,
        lines,
    })
}
