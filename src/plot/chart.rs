//! What a figure shows, independent of drawing: series, line charts, histograms, heat
//! maps, image grids, words and paths, each a [`Panel`] of a [`super::Figure`].

use plotters::prelude::RGBColor;

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

/// One panel of a [`super::Figure`].
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
