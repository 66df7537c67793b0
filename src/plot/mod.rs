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

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::Once;

mod chart;
mod render;

pub use chart::{
    density_histogram, diverging, palette, HeatMap, Histogram, ImageGrid, LineChart, MarkedWord,
    Panel, PathPanel, Series, WordPanel, PALETTE,
};
use render::{draw_panel, pe};

/// DejaVu Sans (see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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
