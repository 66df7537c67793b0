//! Figure 3's report: summary numbers, the figure (curves, both heat maps), the CSV
//! tables and the `figures/README.md` section.

use super::{BDist, Config, Curve, Fig3Data, Instance, OFFICIAL_REPLACEMENT};
use crate::experiments::Report;
use crate::output::Table;
use crate::plot::{Figure, HeatMap, LineChart, Panel, Series};
use crate::stats::mean_std;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Headline numbers of Figure 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig3Summary {
    /// `min L`.
    pub min_loss: f64,
    /// `L(θ_0)`.
    pub initial_loss: f64,
    /// Per method: final mean `L − min L`, its std, diverged runs.
    pub final_gap: Vec<(String, f64, f64, usize)>,
    /// Heat map: number of cells, cells where SoG is better (diff < 0), mean diff.
    pub heat_cells: usize,
    /// Cells where SoG is better.
    pub heat_sog_better: usize,
    /// Cells where the difference is significant (|diff| > 2 SE) and favours SoG.
    pub heat_sog_better_significant: usize,
    /// Cells where the difference is significant and favours Gumbel.
    pub heat_gumbel_better_significant: usize,
    /// Mean of the cell differences.
    pub heat_mean_diff: f64,
    /// Diverged runs in the heat map.
    pub heat_diverged: usize,
    /// The heat map scored the official way (float32, naive exp, negative gaps → 5).
    #[serde(default)]
    pub official: Option<OfficialSummary>,
}

/// The heat map's counts under the official scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialSummary {
    /// Runs in the heat map.
    pub runs: usize,
    /// Runs whose float32 normaliser overflowed (L scored as exactly 0).
    pub overflow: usize,
    /// Of which with Gumbel noise.
    pub overflow_gumbel: usize,
    /// Runs whose gap was negative and replaced by 5 (overflows and rounding).
    pub replaced: usize,
    /// Cells where SoG is better under the official scoring.
    pub sog_better: usize,
}

/// Summary numbers from the data.
pub fn summarise(cfg: &Config, data: &Fig3Data) -> Fig3Summary {
    let p = &data.problem;
    let final_gap = data
        .curves
        .iter()
        .map(|c| {
            let (m, s) = mean_std(c.final_losses.iter().map(|l| l - p.min_loss));
            (c.method.clone(), m, s, c.diverged)
        })
        .collect();
    let h = &data.heatmap;
    Fig3Summary {
        min_loss: p.min_loss,
        initial_loss: p.initial_loss,
        final_gap,
        heat_cells: h.len(),
        heat_sog_better: h.iter().filter(|c| c.diff < 0.0).count(),
        heat_sog_better_significant: h.iter().filter(|c| c.diff < -2.0 * c.diff_se).count(),
        heat_gumbel_better_significant: h.iter().filter(|c| c.diff > 2.0 * c.diff_se).count(),
        heat_mean_diff: mean_std(h.iter().map(|c| c.diff)).0,
        heat_diverged: h.iter().map(|c| c.sog_diverged + c.gumbel_diverged).sum(),
        official: (!h.is_empty() && h.iter().all(|c| c.official.is_some())).then(|| {
            let o: Vec<_> = h.iter().filter_map(|c| c.official.as_ref()).collect();
            OfficialSummary {
                runs: h.len() * 2 * cfg.heat_reps,
                overflow: o.iter().map(|c| c.sog_overflow + c.gumbel_overflow).sum(),
                overflow_gumbel: o.iter().map(|c| c.gumbel_overflow).sum(),
                replaced: o.iter().map(|c| c.sog_replaced + c.gumbel_replaced).sum(),
                sog_better: o.iter().filter(|c| c.diff < 0.0).count(),
            }
        }),
    }
}

/// The figure: curves (first `steps` steps of all methods; SFE over its whole run) and,
/// if computed, the heat map.
pub fn figure(cfg: &Config, data: &Fig3Data) -> Figure {
    let min = data.problem.min_loss;
    let series = |c: &Curve, i: usize, upto: usize| {
        let upto = upto.min(c.mean_gap.len());
        Series::new(
            format!("{} (lr {})", c.method, c.lr),
            (0..upto).map(|t| t as f64).collect(),
            c.mean_gap[..upto].to_vec(),
        )
        .band(c.std_loss[..upto].to_vec())
        .color(i)
    };
    let mut left = LineChart::new(
        format!("first {} steps (mean ± std)", cfg.steps),
        "step",
        "L(θ) − min L",
    );
    for (i, c) in data.curves.iter().enumerate() {
        left = left.series(series(c, i, cfg.steps));
    }
    let mut right = LineChart::new(
        format!("SFE over {} steps", cfg.sfe_steps),
        "step",
        "L(θ) − min L",
    );
    if let Some(sfe) = data.curves.iter().position(|c| c.method == "SFE") {
        right = right.series(series(&data.curves[sfe], sfe, usize::MAX));
        let x = vec![0.0, cfg.sfe_steps.saturating_sub(1) as f64];
        for (i, c) in data.curves.iter().enumerate().filter(|(i, _)| *i != sfe) {
            let last = *c.mean_gap.last().unwrap_or(&f64::NAN);
            right = right.series(
                Series::new(format!("{} final", c.method), x.clone(), vec![last, last])
                    .color(i)
                    .dashed(),
            );
        }
    }
    let y_hi = data
        .curves
        .iter()
        .flat_map(|c| c.mean_gap.iter().zip(&c.std_loss).map(|(m, s)| m + s))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (left, right) = (
        left.y_range(0.0, y_hi * 1.05),
        right.y_range(0.0, y_hi * 1.05),
    );
    let mut rows = vec![vec![Panel::Line(left), Panel::Line(right)]];
    if !data.heatmap.is_empty() {
        let nx = cfg.heat_lrs.len();
        let heat = |title: String, value: &dyn Fn(&super::Cell) -> f64, bar: &str| {
            Panel::Heat(HeatMap {
                title,
                x_label: "learning rate".into(),
                y_label: "λ".into(),
                x_values: cfg.heat_lrs.clone(),
                y_values: cfg.heat_lambdas.clone(),
                values: data
                    .heatmap
                    .chunks(nx)
                    .map(|row| row.iter().map(value).collect())
                    .collect(),
                annotate: true,
                colorbar_label: bar.into(),
            })
        };
        let mut row = vec![heat(
            format!(
                "SoG − Gumbel, exact L ({} runs/cell; blue: SoG)",
                cfg.heat_reps
            ),
            &|c| c.diff,
            "Δ final loss",
        )];
        if data.heatmap.iter().all(|c| c.official.is_some()) {
            row.push(heat(
                format!("the same, official float32 scoring (gap < 0 → {OFFICIAL_REPLACEMENT})"),
                &|c| c.official.as_ref().map_or(f64::NAN, |o| o.diff),
                "Δ final gap",
            ));
        }
        rows.push(row);
    }
    let _ = min;
    let h = if rows.len() == 2 { 950 } else { 480 };
    Figure::rows(rows, (1200, h)).title(format!(
        "Synthetic {}-subset experiment (n = {}), exact L(θ_t)",
        cfg.k, cfg.n
    ))
}

/// Figure 3's report: `fig3.png`/`.svg`, `fig3_curves.csv`, `fig3_heatmap.csv` (if
/// computed), the record and the README section.
pub fn report(cfg: &Config, data: &Fig3Data) -> Result<Report> {
    let summary = summarise(cfg, data);
    let mut t = Table::new();
    let (mut method, mut step, mut ml, mut sl, mut mg) = (vec![], vec![], vec![], vec![], vec![]);
    for c in &data.curves {
        for s in 0..c.mean_loss.len() {
            method.push(c.method.clone());
            step.push(s as i64);
            ml.push(c.mean_loss[s]);
            sl.push(c.std_loss[s]);
            mg.push(c.mean_gap[s]);
        }
    }
    t = t
        .str("method", method)
        .i64("step", step)
        .f64("mean_loss", ml)
        .f64("std_loss", sl)
        .f64("mean_gap", mg);
    let mut tables = vec![("fig3_curves".to_string(), t)];
    if !data.heatmap.is_empty() {
        let h = &data.heatmap;
        let t = Table::new()
            .f64("lr", h.iter().map(|c| c.lr).collect())
            .f64("lambda", h.iter().map(|c| c.lambda).collect())
            .f64(
                "sog_mean_final_loss",
                h.iter().map(|c| c.sog_mean).collect(),
            )
            .f64(
                "gumbel_mean_final_loss",
                h.iter().map(|c| c.gumbel_mean).collect(),
            )
            .f64("diff", h.iter().map(|c| c.diff).collect())
            .f64("diff_se", h.iter().map(|c| c.diff_se).collect())
            .i64(
                "sog_diverged",
                h.iter().map(|c| c.sog_diverged as i64).collect(),
            )
            .i64(
                "gumbel_diverged",
                h.iter().map(|c| c.gumbel_diverged as i64).collect(),
            );
        let o = |f: &dyn Fn(&super::OfficialCell) -> f64| {
            h.iter()
                .map(|c| c.official.as_ref().map_or(f64::NAN, f))
                .collect::<Vec<f64>>()
        };
        let t = t
            .f64("official_sog_mean_gap", o(&|o| o.sog_mean_gap))
            .f64("official_gumbel_mean_gap", o(&|o| o.gumbel_mean_gap))
            .f64("official_diff", o(&|o| o.diff))
            .f64("official_sog_overflow", o(&|o| o.sog_overflow as f64))
            .f64("official_gumbel_overflow", o(&|o| o.gumbel_overflow as f64))
            .f64(
                "official_replaced",
                o(&|o| (o.sog_replaced + o.gumbel_replaced) as f64),
            );
        tables.push(("fig3_heatmap".to_string(), t));
    }

    let readme = readme(cfg, data, &summary);
    let mut lines: Vec<String> = summary
        .final_gap
        .iter()
        .map(|(m, g, s, d)| format!("{m:<12} final L − min L = {g:.4} ± {s:.4} (diverged: {d})"))
        .collect();
    if summary.heat_cells > 0 {
        lines.push(format!(
            "heat map: SoG better in {}/{} cells ({} significant at 2 SE; Gumbel significantly better in {}), mean diff {:.4}, diverged runs {}",
            summary.heat_sog_better,
            summary.heat_cells,
            summary.heat_sog_better_significant,
            summary.heat_gumbel_better_significant,
            summary.heat_mean_diff,
            summary.heat_diverged
        ));
    }
    if let Some(o) = &summary.official {
        lines.push(format!(
            "official float32 scoring: {} of {} runs overflow ({} with Gumbel noise), {} gaps replaced by {OFFICIAL_REPLACEMENT}; SoG better in {}/{} cells",
            o.overflow, o.runs, o.overflow_gumbel, o.replaced, o.sog_better, summary.heat_cells
        ));
    }
    Ok(Report {
        data: serde_json::to_value(data)?,
        summary: serde_json::to_value(&summary)?,
        tables,
        figures: vec![("fig3".into(), figure(cfg, data))],
        readme,
        lines,
    })
}

fn readme(cfg: &Config, data: &Fig3Data, s: &Fig3Summary) -> String {
    let p = &data.problem;
    let mut md = format!(
        "n = {}, k = {}, {}: L(θ_0) = {:.4}, \
         min L = {:.4}. SGD with momentum {}; exact L(θ_t) recorded before each update. \
         The paper gives this figure as curves only (no table), so the left column is a \
         reading of its Figure 3, not numbers.\n\n\
         | method | protocol | paper (Fig. 3, read off the plot) | ours: final L − min L (mean ± std) | diverged |\n\
         |---|---|---|---|---|\n",
        cfg.n,
        cfg.k,
        match (cfg.instance, cfg.b_dist) {
            (Instance::Official, _) => "the official run's θ_0 and b (numpy `RandomState(0)`: \
                θ_0 = `randn(10)`, b = `abs(randn(10))`, float32; the official code reports \
                L(θ_0) = 5.2394, min L = 1.1252)",
            (Instance::Drawn, BDist::AbsNormal) => "θ_0 ~ N(0, I) and b = |N(0, I)| from the run's seed",
            (Instance::Drawn, BDist::Normal) => "θ_0 ~ N(0, I) and b ~ N(0, I) from the run's seed",
        },
        p.initial_loss,
        p.min_loss,
        cfg.momentum,
    );
    let paper = [
        "fastest; close to the optimum within 50 steps",
        "decreases, but stays well above I-MLE",
        "slow; needs far more steps (500)",
    ];
    let protocol = [
        format!(
            "SoG({}, {}, {}), λ = {}, lr {}, {} steps × {} runs",
            cfg.sog_kappa, cfg.sog_tau, cfg.sog_terms, cfg.lambda, cfg.lr, cfg.steps, cfg.reps
        ),
        format!(
            "Gumbel(0, {}), lr {}, {} steps × {} runs",
            cfg.gumbel_tau, cfg.ste_lr, cfg.steps, cfg.reps
        ),
        format!(
            "exact samples, lr {}, {} steps × {} runs",
            cfg.sfe_lr, cfg.sfe_steps, cfg.sfe_reps
        ),
    ];
    for (i, (m, g, sd, d)) in s.final_gap.iter().enumerate() {
        md.push_str(&format!(
            "| {m} | {} | {} | {g:.4} ± {sd:.4} | {d} |\n",
            protocol.get(i).map_or("", |v| v.as_str()),
            paper.get(i).copied().unwrap_or(""),
        ));
    }
    if s.heat_cells > 0 {
        md.push_str(&format!(
            "\nHeat map (mean final L of I-MLE with SoG minus with Gumbel(0, {}) noise, lr × λ, \
             {} runs per cell and noise; paper: mostly blue, i.e. SoG better): ours: SoG better \
             in **{}/{}** cells ({} of them by more than 2 standard errors; Gumbel better by more \
             than 2 SE in {}), mean difference {:.4}, diverged runs: {}.\n\n\
             | λ \\ lr |",
            cfg.gumbel_tau,
            cfg.heat_reps,
            s.heat_sog_better,
            s.heat_cells,
            s.heat_sog_better_significant,
            s.heat_gumbel_better_significant,
            s.heat_mean_diff,
            s.heat_diverged
        ));
        for lr in &cfg.heat_lrs {
            md.push_str(&format!(" {lr} |"));
        }
        md.push_str("\n|---|");
        for _ in &cfg.heat_lrs {
            md.push_str("---|");
        }
        md.push('\n');
        for row in data.heatmap.chunks(cfg.heat_lrs.len()) {
            md.push_str(&format!("| {} |", row[0].lambda));
            for c in row {
                md.push_str(&format!(" {:+.3} ± {:.3} |", c.diff, c.diff_se));
            }
            md.push('\n');
        }
    }
    if let Some(o) = &s.official {
        md.push_str(&format!(
            "\n**Official scoring** (right heat map): the official code scores L in float32 \
             through a naive `exp` of each subset's weight ⟨θ, z⟩; once a weight passes about \
             88.7 the sum overflows, L comes out as exactly 0, the gap turns negative and its \
             post-processing replaces it by {OFFICIAL_REPLACEMENT}. Scored that way, **{} of \
             the {} heat-map runs overflow** ({} of them with Gumbel noise) and {} gaps are \
             replaced; SoG is better in **{}/{}** cells (exact f64 scoring above: {}/{}).\n",
            o.overflow,
            o.runs,
            o.overflow_gumbel,
            o.replaced,
            o.sog_better,
            s.heat_cells,
            s.heat_sog_better,
            s.heat_cells
        ));
    }
    md
}

/// Figure 3's data from `fig3_curves.csv` and `fig3_heatmap.csv` read with polars
/// ([`crate::output::read_csv`]), for [`figure`] (curves: mean and std per step; cells:
/// both differences). `cfg` gives the learning rates of the legend and the problem.
#[cfg(feature = "csv")]
pub fn data_from_frames(
    cfg: &Config,
    curves: &polars::prelude::DataFrame,
    heatmap: Option<&polars::prelude::DataFrame>,
) -> Result<Fig3Data> {
    use crate::output::{f64_column, str_column};
    let method = str_column(curves, "method")?;
    let (ml, sl, mg) = (
        f64_column(curves, "mean_loss")?,
        f64_column(curves, "std_loss")?,
        f64_column(curves, "mean_gap")?,
    );
    let mut out: Vec<Curve> = Vec::new();
    for (i, m) in method.iter().enumerate() {
        if out.last().is_none_or(|c| &c.method != m) {
            let lr = match m.as_str() {
                "STE" => cfg.ste_lr,
                "SFE" => cfg.sfe_lr,
                _ => cfg.lr,
            };
            out.push(Curve {
                method: m.clone(),
                spec: None,
                lr,
                reps: 0,
                diverged: 0,
                mean_loss: vec![],
                std_loss: vec![],
                mean_gap: vec![],
                final_losses: vec![],
            });
        }
        let c = out.last_mut().expect("pushed");
        c.mean_loss.push(ml[i]);
        c.std_loss.push(sl[i]);
        c.mean_gap.push(mg[i]);
    }
    let mut cells = Vec::new();
    if let Some(h) = heatmap {
        let col = |n: &str| f64_column(h, n);
        let (lr, lambda, diff, se, off) = (
            col("lr")?,
            col("lambda")?,
            col("diff")?,
            col("diff_se")?,
            col("official_diff").ok(),
        );
        for i in 0..lr.len() {
            cells.push(super::Cell {
                lr: lr[i],
                lambda: lambda[i],
                sog_mean: f64::NAN,
                gumbel_mean: f64::NAN,
                diff: diff[i],
                diff_se: se[i],
                sog_diverged: 0,
                gumbel_diverged: 0,
                official: off.as_ref().map(|o| super::OfficialCell {
                    sog_mean_gap: f64::NAN,
                    gumbel_mean_gap: f64::NAN,
                    diff: o[i],
                    sog_overflow: 0,
                    gumbel_overflow: 0,
                    sog_replaced: 0,
                    gumbel_replaced: 0,
                }),
            });
        }
    }
    Ok(Fig3Data {
        problem: super::problem(cfg, 0)?,
        curves: out,
        heatmap: cells,
    })
}
