//! Figures with plotters: line charts with mean ± std bands, histograms with a density
//! overlay, heat maps on a diverging blue/red scale and image grids, laid out in rows of
//! panels and saved as PNG and SVG (atomically), or shown inline in an evcxr notebook.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary and registered with plotters'
//! `ab_glyph` backend by [`init_fonts`] (called by every entry point here), so figures look
//! the same on every machine and need no system fonts.
//!
//! ```
//! use imle_paper::plot::{Figure, LineChart, Panel, Series};
//! let chart = LineChart::new("Loss", "step", "L")
//!     .series(Series::new("I-MLE", vec![0.0, 1.0, 2.0], vec![3.0, 2.0, 1.5]).band(vec![0.2, 0.1, 0.1]));
//! let fig = Figure::single(Panel::Line(chart), (640, 400));
//! let png = fig.to_png_bytes()?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), anyhow::Error>(())
//! ```

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// DejaVu Sans (see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font as plotters' `sans-serif` (all styles). Idempotent.
pub fn init_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // The font is a valid TTF compiled into the binary; a failure here is a bug.
            plotters::style::register_font("sans-serif", style, FONT)
                .unwrap_or_else(|_| panic!("the embedded DejaVu Sans font is invalid"));
        }
    });
}

/// Qualitative palette (matplotlib's tab10), indexed by series colour.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Colour `i` of [`PALETTE`] (cycling).
pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line of a [`LineChart`], optionally with a ± band (e.g. one standard deviation).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values (non-finite points are skipped).
    pub y: Vec<f64>,
    /// Half-width of the band around `y` (same length), if any.
    pub band: Option<Vec<f64>>,
    /// Index into [`PALETTE`] (default: the series' position).
    pub color: Option<usize>,
    /// Dashed line.
    pub dashed: bool,
}

impl Series {
    /// A plain line.
    pub fn new(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            x,
            y,
            band: None,
            color: None,
            dashed: false,
        }
    }
    /// Adds a band `y ± half_width`.
    pub fn band(mut self, half_width: Vec<f64>) -> Self {
        self.band = Some(half_width);
        self
    }
    /// Sets the palette colour.
    pub fn color(mut self, i: usize) -> Self {
        self.color = Some(i);
        self
    }
    /// Draws the line dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A line chart with optional ± bands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    /// Panel title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range (default: fitted to the data and bands).
    pub y_range: Option<(f64, f64)>,
}

impl LineChart {
    /// An empty chart.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Default::default()
        }
    }
    /// Adds a series.
    pub fn series(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }
    /// Fixes the y range.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }
}

/// A density histogram (bars of height `density` over `edges`), with an optional
/// overlaid curve (e.g. a reference density).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Panel title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Bin edges (`density.len() + 1` values, increasing).
    pub edges: Vec<f64>,
    /// Bar heights.
    pub density: Vec<f64>,
    /// Palette colour of the bars.
    pub color: usize,
    /// Curves drawn over the bars.
    pub overlay: Vec<Series>,
    /// Legend entry of the bars.
    pub label: String,
}

impl Histogram {
    /// Bins `samples` into `bins` equal bins over `range` and normalises to a density
    /// (samples outside the range count in the normalisation but are not drawn).
    pub fn from_samples(samples: &[f64], bins: usize, range: (f64, f64)) -> Self {
        let (edges, density) = density_histogram(samples, bins, range);
        Self {
            edges,
            density,
            ..Default::default()
        }
    }
    /// Sets title and axis labels.
    pub fn labels(
        mut self,
        title: impl Into<String>,
        x: impl Into<String>,
        y: impl Into<String>,
    ) -> Self {
        self.title = title.into();
        self.x_label = x.into();
        self.y_label = y.into();
        self
    }
    /// Adds an overlaid curve.
    pub fn overlay(mut self, s: Series) -> Self {
        self.overlay.push(s);
        self
    }
}

/// `(edges, density)` of `samples` over `bins` equal bins in `range`.
pub fn density_histogram(samples: &[f64], bins: usize, range: (f64, f64)) -> (Vec<f64>, Vec<f64>) {
    let (lo, hi) = range;
    let w = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|i| lo + w * i as f64).collect();
    let mut counts = vec![0usize; bins];
    for &x in samples {
        if x >= lo && x < hi {
            let b = (((x - lo) / w) as usize).min(bins - 1);
            counts[b] += 1;
        }
    }
    let n = samples.len().max(1) as f64;
    (edges, counts.iter().map(|&c| c as f64 / (n * w)).collect())
}

/// A heat map of `values[row][col]` over `x_values` (columns) × `y_values` (rows), on a
/// diverging scale centred at 0: blue for negative, white at 0, red for positive.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeatMap {
    /// Panel title.
    pub title: String,
    /// x-axis label (columns).
    pub x_label: String,
    /// y-axis label (rows).
    pub y_label: String,
    /// Column coordinates.
    pub x_values: Vec<f64>,
    /// Row coordinates (drawn bottom to top).
    pub y_values: Vec<f64>,
    /// `values[row][col]`; non-finite cells are drawn grey.
    pub values: Vec<Vec<f64>>,
    /// Print each cell's value in it.
    pub annotate: bool,
    /// Label of the colour bar.
    pub colorbar_label: String,
}

/// The diverging colour of `v` on the scale `[-max_abs, max_abs]` (blue < 0 < red).
pub fn diverging(v: f64, max_abs: f64) -> RGBColor {
    if !v.is_finite() {
        return RGBColor(160, 160, 160);
    }
    let t = if max_abs > 0.0 {
        (v / max_abs).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let (end, t) = if t < 0.0 {
        ((33.0, 102.0, 172.0), -t)
    } else {
        ((178.0, 24.0, 43.0), t)
    };
    let mix = |e: f64| (255.0 + (e - 255.0) * t).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// A grid of grey-scale images (values in [0, 1], row-major `height × width`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageGrid {
    /// Panel title.
    pub title: String,
    /// The images.
    pub images: Vec<Vec<f32>>,
    /// Width of each image in pixels.
    pub width: usize,
    /// Height of each image in pixels.
    pub height: usize,
    /// Images per row.
    pub cols: usize,
}

/// A word of a [`WordPanel`]: its text, whether the model selected it, whether it is in
/// the true rationale.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct MarkedWord {
    /// The token.
    pub text: String,
    /// Selected by the model.
    pub selected: bool,
    /// In the annotated rationale.
    pub rationale: bool,
}

/// Texts drawn word by word, wrapped: selected words on green when they are in the
/// rationale and on red when not; rationale words the model missed underlined in blue.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct WordPanel {
    /// Panel title.
    pub title: String,
    /// The texts, one paragraph each.
    pub texts: Vec<Vec<MarkedWord>>,
}

/// A terrain map (RGB, channels last) on a `k x k` grid with paths over it: the true path
/// outlined in white, each other path as dots of its palette colour (offset per path, so
/// that paths sharing a cell stay visible), named in a legend below.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PathPanel {
    /// Panel title.
    pub title: String,
    /// The image, `px x px x 3`.
    pub image: Vec<u8>,
    /// Image side in pixels.
    pub px: usize,
    /// Grid size.
    pub k: usize,
    /// The true path's indicator (`k x k`).
    pub truth: Vec<f32>,
    /// `(label, indicator)` of each predicted path, drawn in `palette(i)`.
    pub paths: Vec<(String, Vec<f32>)>,
}

/// One panel of a [`Figure`].
#[derive(Debug, Clone, PartialEq)]
pub enum Panel {
    /// A line chart.
    Line(LineChart),
    /// A histogram.
    Hist(Histogram),
    /// A heat map.
    Heat(HeatMap),
    /// An image grid.
    Images(ImageGrid),
    /// Texts with marked words.
    Words(WordPanel),
    /// A map with paths.
    Paths(PathPanel),
    /// Nothing (a gap).
    Empty,
}

/// A figure: rows of panels (each row split evenly among its panels), saved as PNG+SVG.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Optional title above all panels.
    pub title: Option<String>,
    /// The rows of panels.
    pub rows: Vec<Vec<Panel>>,
    /// Relative heights of the rows (default: equal).
    pub row_heights: Option<Vec<f64>>,
    /// Size in pixels.
    pub size: (u32, u32),
}

impl Figure {
    /// A figure of one panel.
    pub fn single(panel: Panel, size: (u32, u32)) -> Self {
        Self {
            title: None,
            rows: vec![vec![panel]],
            row_heights: None,
            size,
        }
    }
    /// A figure of the given rows.
    pub fn rows(rows: Vec<Vec<Panel>>, size: (u32, u32)) -> Self {
        Self {
            title: None,
            rows,
            row_heights: None,
            size,
        }
    }
    /// Sets the overall title.
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = Some(t.into());
        self
    }
    /// Sets relative row heights.
    pub fn row_heights(mut self, h: Vec<f64>) -> Self {
        self.row_heights = Some(h);
        self
    }

    /// Draws the figure on any plotters drawing area.
    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        init_fonts();
        root.fill(&WHITE).map_err(pe)?;
        let area = match &self.title {
            Some(t) => root.titled(t, ("sans-serif", 26).into_font()).map_err(pe)?,
            None => root.clone(),
        };
        let n = self.rows.len();
        let weights = self
            .row_heights
            .clone()
            .filter(|w| w.len() == n)
            .unwrap_or_else(|| vec![1.0; n]);
        let total: f64 = weights.iter().sum();
        let (_, h) = area.dim_in_pixel();
        let mut breaks = Vec::new();
        let mut acc = 0.0;
        for w in &weights[..n.saturating_sub(1)] {
            acc += w;
            breaks.push((h as f64 * acc / total).round() as i32);
        }
        let row_areas = area.split_by_breakpoints::<i32, i32, _, _>([], breaks);
        for (row, row_area) in self.rows.iter().zip(row_areas) {
            let cells = row_area.split_evenly((1, row.len().max(1)));
            for (panel, cell) in row.iter().zip(cells) {
                draw_panel(panel, &cell)?;
            }
        }
        root.present().map_err(pe)?;
        Ok(())
    }

    /// The figure as an SVG document.
    pub fn to_svg_string(&self) -> Result<String> {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, self.size).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(s)
    }

    /// The figure as PNG bytes.
    pub fn to_png_bytes(&self) -> Result<Vec<u8>> {
        let dir = tempfile_dir()?;
        let path = dir.join(format!(
            "imle-paper-{}-{}.png",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        self.write_png(&path)?;
        let bytes = std::fs::read(&path)?;
        std::fs::remove_file(&path).ok();
        Ok(bytes)
    }

    fn write_png(&self, path: &Path) -> Result<()> {
        let root = BitMapBackend::new(path, self.size).into_drawing_area();
        self.draw(&root)
            .with_context(|| format!("drawing {}", path.display()))
    }

    /// Saves `<dir>/<stem>.png` and `<dir>/<stem>.svg`, each atomically; returns the paths.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
        let png = dir.join(format!("{stem}.png"));
        let tmp = crate::output::tmp_path(&png)?;
        if let Err(e) = self.write_png(&tmp) {
            std::fs::remove_file(&tmp).ok();
            return Err(e);
        }
        crate::output::commit_tmp(&tmp, &png)?;
        let svg = dir.join(format!("{stem}.svg"));
        crate::output::write_atomic(&svg, self.to_svg_string()?.as_bytes())?;
        Ok(vec![png, svg])
    }

    /// Shows the figure inline in an evcxr notebook (prints a base64 PNG between evcxr's
    /// content markers).
    pub fn show(&self) -> Result<()> {
        let png = self.to_png_bytes()?;
        println!(
            "EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
            base64(&png)
        );
        Ok(())
    }

    /// evcxr's display hook: a `Figure` as the value of a cell is shown as an image.
    pub fn evcxr_display(&self) {
        if let Err(e) = self.show() {
            println!("(figure could not be drawn: {e})");
        }
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir();
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Standard base64 (with padding).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

fn draw_panel<DB: DrawingBackend>(panel: &Panel, area: &DrawingArea<DB, Shift>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn diverging_scale_is_blue_white_red() {
        assert_eq!(diverging(0.0, 1.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(-1.0, 1.0), RGBColor(33, 102, 172));
        assert_eq!(diverging(1.0, 1.0), RGBColor(178, 24, 43));
    }

    #[test]
    fn histogram_is_a_density() {
        let s: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let (e, d) = density_histogram(&s, 10, (0.0, 1.0));
        let area: f64 = e.windows(2).zip(&d).map(|(e, d)| (e[1] - e[0]) * d).sum();
        assert!((area - 1.0).abs() < 1e-9);
    }

    #[test]
    fn every_panel_kind_renders() {
        let fig = Figure::rows(
            vec![
                vec![
                    Panel::Line(LineChart::new("a", "x", "y").series(
                        Series::new("s", vec![0.0, 1.0], vec![1.0, 0.0]).band(vec![0.1, 0.1]),
                    )),
                    Panel::Hist(
                        Histogram::from_samples(&[0.1, 0.2, 0.2, 0.9], 4, (0.0, 1.0))
                            .labels("h", "x", "density"),
                    ),
                ],
                vec![
                    Panel::Heat(HeatMap {
                        title: "heat".into(),
                        x_values: vec![1.0, 2.0],
                        y_values: vec![0.5],
                        values: vec![vec![-1.0, 0.5]],
                        annotate: true,
                        ..Default::default()
                    }),
                    Panel::Images(ImageGrid {
                        title: "img".into(),
                        images: vec![vec![0.0, 1.0, 0.5, 0.2]],
                        width: 2,
                        height: 2,
                        cols: 1,
                    }),
                ],
            ],
            (800, 600),
        )
        .title("test");
        let dir = tempfile::tempdir().unwrap();
        let files = fig.save(dir.path(), "t").unwrap();
        assert_eq!(&std::fs::read(&files[0]).unwrap()[..4], b"\x89PNG");
        assert!(std::fs::read_to_string(&files[1]).unwrap().contains("<svg"));
    }
}
