//! Drawing each kind of [`Panel`] with plotters onto a drawing area (PNG or SVG backend).

use super::chart::{
    diverging, palette, HeatMap, Histogram, ImageGrid, LineChart, Panel, PathPanel, WordPanel,
};
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;

pub(super) fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

pub(super) fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    match panel {
        Panel::Line(c) => draw_line(c, area),
        Panel::Hist(h) => draw_hist(h, area),
        Panel::Heat(h) => draw_heat(h, area),
        Panel::Images(g) => draw_images(g, area),
        Panel::Words(w) => draw_words(w, area),
        Panel::Paths(p) => draw_paths(p, area),
        Panel::Empty => Ok(()),
    }
}

fn pad_range(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo <= 1e-12 {
        let d = lo.abs().max(1.0) * 0.05;
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * frac;
    (lo - d, hi + d)
}

fn min_max(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    vals.filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        })
}

fn draw_line<DB: DrawingBackend>(c: &LineChart, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let (x0, x1) = min_max(c.series.iter().flat_map(|s| s.x.iter().copied()));
    let (y0, y1) = c.y_range.unwrap_or_else(|| {
        let (lo, hi) = min_max(c.series.iter().flat_map(|s| {
            let band = s.band.clone().unwrap_or_else(|| vec![0.0; s.y.len()]);
            s.y.iter()
                .zip(band)
                .flat_map(|(y, b)| [y - b, y + b])
                .collect::<Vec<_>>()
        }));
        pad_range(lo, hi, 0.05)
    });
    let (x0, x1) = pad_range(x0, x1, 0.0);
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(246, 246, 246))
        .draw()
        .map_err(pe)?;
    for (i, s) in c.series.iter().enumerate() {
        let color = palette(s.color.unwrap_or(i));
        if let Some(band) = &s.band {
            let pts: Vec<(f64, f64, f64)> =
                s.x.iter()
                    .zip(&s.y)
                    .zip(band)
                    .filter(|((x, y), b)| x.is_finite() && y.is_finite() && b.is_finite())
                    .map(|((x, y), b)| (*x, *y, *b))
                    .collect();
            if pts.len() > 1 {
                let mut poly: Vec<(f64, f64)> =
                    pts.iter().map(|p| (p.0, (p.1 + p.2).min(y1))).collect();
                poly.extend(pts.iter().rev().map(|p| (p.0, (p.1 - p.2).max(y0))));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        poly,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(pe)?;
            }
        }
        let pts: Vec<(f64, f64)> =
            s.x.iter()
                .zip(&s.y)
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(x, y)| (*x, *y))
                .collect();
        let style = color.stroke_width(2);
        let ann = if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(pts, 8, 5, style))
                .map_err(pe)?
        } else {
            chart.draw_series(LineSeries::new(pts, style)).map_err(pe)?
        };
        ann.label(&s.name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
        });
    }
    if c.series.iter().any(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(pe)?;
    }
    Ok(())
}

fn draw_hist<DB: DrawingBackend>(h: &Histogram, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let x0 = *h.edges.first().unwrap_or(&0.0);
    let x1 = *h.edges.last().unwrap_or(&1.0);
    let (_, ymax) = min_max(
        h.density
            .iter()
            .copied()
            .chain(h.overlay.iter().flat_map(|s| s.y.iter().copied())),
    );
    let ymax = if ymax.is_finite() && ymax > 0.0 {
        ymax * 1.08
    } else {
        1.0
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&h.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..ymax)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc(&h.x_label)
        .y_desc(&h.y_label)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(246, 246, 246))
        .draw()
        .map_err(pe)?;
    let color = palette(h.color);
    let bars = h
        .edges
        .windows(2)
        .zip(&h.density)
        .map(|(e, d)| Rectangle::new([(e[0], 0.0), (e[1], *d)], color.mix(0.55).filled()));
    let ann = chart.draw_series(bars).map_err(pe)?;
    if !h.label.is_empty() {
        ann.label(&h.label).legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.mix(0.55).filled())
        });
    }
    for (i, s) in h.overlay.iter().enumerate() {
        let c = palette(s.color.unwrap_or(3 + i));
        let pts: Vec<(f64, f64)> = s.x.iter().copied().zip(s.y.iter().copied()).collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(3)))
            .map_err(pe)?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    if !h.label.is_empty() || !h.overlay.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(pe)?;
    }
    Ok(())
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn draw_heat<DB: DrawingBackend>(h: &HeatMap, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let nx = h.x_values.len().max(1);
    let ny = h.y_values.len().max(1);
    let (lo, hi) = min_max(h.values.iter().flatten().copied());
    let max_abs = lo.abs().max(hi.abs());
    let max_abs = if max_abs.is_finite() && max_abs > 0.0 {
        max_abs
    } else {
        1.0
    };
    let (w, _) = area.dim_in_pixel();
    let (main, bar) = area.split_horizontally(w.saturating_sub(110) as i32);
    let xs = h.x_values.clone();
    let ys = h.y_values.clone();
    let label = |vals: &[f64], v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) if *i >= 0 && (*i as usize) < vals.len() => {
            fmt_tick(vals[*i as usize])
        }
        _ => String::new(),
    };
    let xfmt = |v: &SegmentValue<i32>| label(&xs, v);
    let yfmt = |v: &SegmentValue<i32>| label(&ys, v);
    let mut chart = ChartBuilder::on(&main)
        .caption(&h.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (0..nx as i32 - 1).into_segmented(),
            (0..ny as i32 - 1).into_segmented(),
        )
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(nx + 1)
        .y_labels(ny + 1)
        .x_desc(&h.x_label)
        .y_desc(&h.y_label)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(pe)?;
    for (r, row) in h.values.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let (x, y) = (c as i32, r as i32);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    diverging(v, max_abs).filled(),
                )))
                .map_err(pe)?;
            if h.annotate {
                let dark = v.is_finite() && (v / max_abs).abs() > 0.6;
                let color = if dark { WHITE } else { BLACK };
                let text = if v.is_finite() {
                    format!("{v:.3}")
                } else {
                    "n/a".into()
                };
                let style = ("sans-serif", 13).into_font().color(&color).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                );
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                        style,
                    )))
                    .map_err(pe)?;
            }
        }
    }
    // Colour bar.
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(40)
        .margin_bottom(57)
        .margin_right(10)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..1.0, -max_abs..max_abs)
        .map_err(pe)?;
    cb.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(&h.colorbar_label)
        .y_labels(5)
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()
        .map_err(pe)?;
    let steps = 64;
    cb.draw_series((0..steps).map(|i| {
        let a = -max_abs + 2.0 * max_abs * i as f64 / steps as f64;
        let b = -max_abs + 2.0 * max_abs * (i + 1) as f64 / steps as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            diverging((a + b) / 2.0, max_abs).filled(),
        )
    }))
    .map_err(pe)?;
    Ok(())
}

fn draw_words<DB: DrawingBackend>(w: &WordPanel, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let area = if w.title.is_empty() {
        area.clone()
    } else {
        area.titled(&w.title, ("sans-serif", 18)).map_err(pe)?
    };
    let font: TextStyle = ("sans-serif", 13).into_font().into();
    let (width, height) = area.dim_in_pixel();
    let (line_h, margin) = (17i32, 6i32);
    let (mut x, mut y) = (margin, margin);
    for text in &w.texts {
        for word in text {
            let (tw, _) = area.estimate_text_size(&word.text, &font).map_err(pe)?;
            let tw = tw as i32;
            if x + tw > width as i32 - margin && x > margin {
                x = margin;
                y += line_h;
            }
            if y + line_h > height as i32 {
                return Ok(());
            }
            let fill = match (word.selected, word.rationale) {
                (true, true) => Some(RGBColor(150, 220, 150)),
                (true, false) => Some(RGBColor(245, 160, 160)),
                _ => None,
            };
            if let Some(c) = fill {
                area.draw(&Rectangle::new(
                    [(x - 1, y), (x + tw + 1, y + line_h - 2)],
                    c.filled(),
                ))
                .map_err(pe)?;
            }
            if word.rationale && !word.selected {
                area.draw(&Rectangle::new(
                    [(x, y + line_h - 4), (x + tw, y + line_h - 2)],
                    RGBColor(31, 119, 180).filled(),
                ))
                .map_err(pe)?;
            }
            area.draw(&Text::new(word.text.clone(), (x, y + 1), font.clone()))
                .map_err(pe)?;
            x += tw + 5;
        }
        x = margin;
        y += line_h + 6;
    }
    Ok(())
}

fn draw_images<DB: DrawingBackend>(g: &ImageGrid, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let area = if g.title.is_empty() {
        area.clone()
    } else {
        area.titled(&g.title, ("sans-serif", 20)).map_err(pe)?
    };
    let cols = g.cols.max(1);
    let rows = g.images.len().div_ceil(cols).max(1);
    let (w, h) = area.dim_in_pixel();
    let cell = ((w as usize / cols).min(h as usize / rows)).max(1);
    let px = (cell.saturating_sub(2) as f64 / g.width.max(g.height).max(1) as f64).max(0.1);
    for (i, img) in g.images.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        let ox = (c * cell + 1) as f64;
        let oy = (r * cell + 1) as f64;
        for y in 0..g.height {
            for x in 0..g.width {
                let v = img
                    .get(y * g.width + x)
                    .copied()
                    .unwrap_or(0.0)
                    .clamp(0.0, 1.0);
                let grey = (255.0 * (1.0 - v)).round() as u8;
                let x0 = (ox + x as f64 * px).round() as i32;
                let y0 = (oy + y as f64 * px).round() as i32;
                let x1 = (ox + (x + 1) as f64 * px).round() as i32;
                let y1 = (oy + (y + 1) as f64 * px).round() as i32;
                area.draw(&Rectangle::new(
                    [(x0, y0), (x1, y1)],
                    RGBColor(grey, grey, grey).filled(),
                ))
                .map_err(pe)?;
            }
        }
    }
    Ok(())
}

fn draw_paths<DB: DrawingBackend>(p: &PathPanel, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let area = if p.title.is_empty() {
        area.clone()
    } else {
        area.titled(&p.title, ("sans-serif", 16)).map_err(pe)?
    };
    let (w, h) = area.dim_in_pixel();
    let legend_h = 16 * p.paths.len() as u32 + 4;
    let side = w.min(h.saturating_sub(legend_h)).max(1) as f64;
    let (px, k) = (p.px.max(1), p.k.max(1));
    let scale = side / px as f64;
    let at = |v: f64| v.round() as i32;
    for y in 0..px {
        for x in 0..px {
            let o = (y * px + x) * 3;
            let Some(rgb) = p.image.get(o..o + 3) else {
                continue;
            };
            area.draw(&Rectangle::new(
                [
                    (at(x as f64 * scale), at(y as f64 * scale)),
                    (at((x + 1) as f64 * scale), at((y + 1) as f64 * scale)),
                ],
                RGBColor(rgb[0], rgb[1], rgb[2]).filled(),
            ))
            .map_err(pe)?;
        }
    }
    let cell = side / k as f64;
    for (i, &t) in p.truth.iter().enumerate() {
        if t != 0.0 {
            let (r, c) = ((i / k) as f64, (i % k) as f64);
            area.draw(&Rectangle::new(
                [
                    (at(c * cell + 1.0), at(r * cell + 1.0)),
                    (at((c + 1.0) * cell - 1.0), at((r + 1.0) * cell - 1.0)),
                ],
                WHITE.stroke_width(2),
            ))
            .map_err(pe)?;
        }
    }
    let n = p.paths.len().max(1) as f64;
    for (j, (_, z)) in p.paths.iter().enumerate() {
        let angle = std::f64::consts::TAU * j as f64 / n;
        let off = if p.paths.len() > 1 { cell * 0.22 } else { 0.0 };
        for (i, &v) in z.iter().enumerate() {
            if v != 0.0 {
                let (r, c) = ((i / k) as f64, (i % k) as f64);
                let centre = (
                    at((c + 0.5) * cell + off * angle.cos()),
                    at((r + 0.5) * cell + off * angle.sin()),
                );
                area.draw(&Circle::new(
                    centre,
                    (cell * 0.12).max(2.0) as u32,
                    palette(j).filled(),
                ))
                .map_err(pe)?;
            }
        }
    }
    let font: TextStyle = ("sans-serif", 13).into_font().into();
    for (j, (label, _)) in p.paths.iter().enumerate() {
        let y = side as i32 + 4 + 16 * j as i32;
        area.draw(&Circle::new((6, y + 7), 5, palette(j).filled()))
            .map_err(pe)?;
        area.draw_text(label, &font, (16, y)).map_err(pe)?;
    }
    Ok(())
}
