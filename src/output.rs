//! Writing results: atomic files, JSON run records and CSV tables (polars).
//!
//! Every file is written to a temporary file in the destination folder and then
//! renamed over the destination, so an interrupted run never leaves a half-written
//! result: readers see either the previous complete file or the new complete file.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
/// Creates the parent folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().ok();
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result
}

/// A temporary path next to `path` for writers that need a file name (e.g. the PNG
/// encoder); pass it to [`commit_tmp`] once the file is complete.
pub fn tmp_path(path: &Path) -> Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    // Keep the extension last: some encoders pick the format from it.
    Ok(dir.join(format!(".tmp-{}-{name}", std::process::id())))
}

/// Renames a complete temporary file (from [`tmp_path`]) onto its destination.
pub fn commit_tmp(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// The record of one run, written as `<experiment>.json`.
///
/// `figures/README.md` is regenerated from these records (see
/// [`crate::experiments::write_readme`]): its numbers are always measured ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord<C, D, S> {
    /// Experiment name (`fig2`, `fig3`, ...), also the stem of its files.
    pub experiment: String,
    /// Human-readable title.
    pub title: String,
    /// The command line that produced this record (arguments after the binary name).
    pub command: String,
    /// `quick` or `full`.
    pub profile: crate::run::Profile,
    /// The base seed; every repetition derives its own seed from it.
    pub seed: u64,
    /// The number of rayon threads requested (`None`: rayon's default). Numbers do not
    /// depend on it.
    pub threads: Option<usize>,
    /// The resolved configuration (every hyper-parameter).
    pub config: C,
    /// The name and checksum of each data set the units were computed on (none for
    /// synthetic data: the field is then left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_identity: Vec<(String, String)>,
    /// Per-step / per-epoch values.
    pub data: D,
    /// The headline numbers.
    pub summary: S,
    /// Wall-clock seconds of the run.
    pub elapsed_seconds: f64,
    /// Version of the `imle-paper` crate.
    pub crate_version: String,
    /// The files written next to this record (names relative to the output folder).
    pub files: Vec<String>,
    /// Markdown section for `figures/README.md`: the paper's values beside ours.
    pub readme: String,
}

/// One column of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Floating-point values (NaN allowed).
    F64(Vec<f64>),
    /// Integers.
    I64(Vec<i64>),
    /// Strings.
    Str(Vec<String>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl ColumnData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F64(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::Str(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }
    /// Whether the column is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A small column-oriented table, written as CSV with polars.
///
/// ```
/// use imle_paper::output::Table;
/// let t = Table::new()
///     .str("method", vec!["imle".into(), "ste".into()])
///     .f64("loss", vec![0.5, 1.0]);
/// assert_eq!(t.height(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// `(name, values)` in column order.
    pub columns: Vec<(String, ColumnData)>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a float column.
    pub fn f64(mut self, name: &str, values: Vec<f64>) -> Self {
        self.columns.push((name.into(), ColumnData::F64(values)));
        self
    }
    /// Appends an integer column.
    pub fn i64(mut self, name: &str, values: Vec<i64>) -> Self {
        self.columns.push((name.into(), ColumnData::I64(values)));
        self
    }
    /// Appends a string column.
    pub fn str(mut self, name: &str, values: Vec<String>) -> Self {
        self.columns.push((name.into(), ColumnData::Str(values)));
        self
    }
    /// Appends a boolean column.
    pub fn bool(mut self, name: &str, values: Vec<bool>) -> Self {
        self.columns.push((name.into(), ColumnData::Bool(values)));
        self
    }
    /// Number of rows (of the first column).
    pub fn height(&self) -> usize {
        self.columns.first().map_or(0, |c| c.1.len())
    }

    /// The table as a polars `DataFrame`.
    #[cfg(feature = "csv")]
    pub fn to_polars(&self) -> Result<polars::prelude::DataFrame> {
        use polars::prelude::*;
        let cols: Vec<Column> = self
            .columns
            .iter()
            .map(|(name, data)| {
                let name = PlSmallStr::from(name.as_str());
                match data {
                    ColumnData::F64(v) => Column::new(name, v),
                    ColumnData::I64(v) => Column::new(name, v),
                    ColumnData::Str(v) => Column::new(name, v),
                    ColumnData::Bool(v) => Column::new(name, v),
                }
            })
            .collect();
        Ok(DataFrame::new(cols)?)
    }

    /// The table as CSV text (header + rows), written by polars.
    #[cfg(feature = "csv")]
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        use polars::prelude::*;
        let mut df = self.to_polars()?;
        let mut buf = Vec::new();
        CsvWriter::new(&mut buf)
            .include_header(true)
            .finish(&mut df)?;
        Ok(buf)
    }

    /// Without the `csv` feature there is no CSV writer.
    #[cfg(not(feature = "csv"))]
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        anyhow::bail!(
            "CSV output is disabled: imle-paper was built without its `csv` feature (polars)"
        )
    }

    /// Writes the table as CSV, atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let bytes = self
            .to_csv()
            .with_context(|| format!("building CSV for {}", path.display()))?;
        write_atomic(path, &bytes)
    }
}

/// Reads a CSV file (with a header) into a polars `DataFrame`: how the notebooks load
/// the committed results (`figures/*.csv`).
#[cfg(feature = "csv")]
pub fn read_csv(path: impl AsRef<Path>) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::*;
    let path = path.as_ref();
    if !path.is_file() {
        anyhow::bail!(
            "{} not found: regenerate it with `cargo run --release -- <experiment> --full` \
             (see figures/README.md)",
            path.display()
        );
    }
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()
        .with_context(|| format!("reading {}", path.display()))
}

/// A column of a `DataFrame` as `f64`s (integers converted; nulls become NaN).
#[cfg(feature = "csv")]
pub fn f64_column(df: &polars::prelude::DataFrame, name: &str) -> Result<Vec<f64>> {
    use polars::prelude::*;
    let c = df
        .column(name)
        .with_context(|| format!("no column '{name}'"))?
        .cast(&DataType::Float64)?;
    Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// A string column of a `DataFrame` (nulls become empty strings).
#[cfg(feature = "csv")]
pub fn str_column(df: &polars::prelude::DataFrame, name: &str) -> Result<Vec<String>> {
    let c = df
        .column(name)
        .with_context(|| format!("no column '{name}'"))?;
    Ok(c.str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// Whether two JSON values are the same configuration: equal structure, equal strings and
/// integers, and other numbers equal at f32 precision. An f32 field serialised from memory
/// (`serde_json::to_value`, as f64: 0.2f32 is 0.20000000298023224) and read back from a
/// file written at f32 precision (`0.2`) must compare equal, whichever side wrote what.
pub fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(i), Some(j), _, _) => i == j,
                (_, _, Some(i), Some(j)) => i == j,
                _ => match (x.as_f64(), y.as_f64()) {
                    (Some(f), Some(g)) => f == g || f as f32 == g as f32,
                    _ => false,
                },
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_json_compares_f32_fields_at_f32_precision() {
        #[derive(serde::Serialize)]
        struct C {
            dropout: f32,
            seed: u64,
        }
        let mem = serde_json::to_value(C {
            dropout: 0.2,
            seed: 7,
        })
        .unwrap();
        let file: serde_json::Value = serde_json::from_str(
            &serde_json::to_string(&C {
                dropout: 0.2,
                seed: 7,
            })
            .unwrap(),
        )
        .unwrap();
        assert_ne!(mem, file, "serde_json writes f32 fields differently");
        assert!(same_json(&mem, &file) && same_json(&file, &mem));
        let other = serde_json::to_value(C {
            dropout: 0.3,
            seed: 7,
        })
        .unwrap();
        assert!(!same_json(&mem, &other));
        let seed = serde_json::json!({ "dropout": 0.2, "seed": 8 });
        assert!(!same_json(&file, &seed));
        assert!(!same_json(
            &serde_json::json!([1, 2]),
            &serde_json::json!([1, 2, 3])
        ));
        assert!(!same_json(
            &serde_json::json!({ "a": 1 }),
            &serde_json::json!({ "b": 1 })
        ));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(feature = "csv")]
    #[test]
    fn csv_has_header_and_rows() {
        let t = Table::new()
            .str("m", vec!["a".into(), "b".into()])
            .f64("v", vec![1.5, f64::NAN])
            .i64("i", vec![1, 2]);
        let s = String::from_utf8(t.to_csv().unwrap()).unwrap();
        let lines: Vec<_> = s.lines().collect();
        assert_eq!(lines[0], "m,v,i");
        assert_eq!(lines[1], "a,1.5,1");
        assert_eq!(lines.len(), 3);
    }

    #[cfg(feature = "csv")]
    #[test]
    fn csv_reads_back_through_polars() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        Table::new()
            .str("m", vec!["a".into(), "b".into()])
            .f64("v", vec![1.5, f64::NAN])
            .i64("i", vec![1, 2])
            .write_csv(&p)
            .unwrap();
        let df = read_csv(&p).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(str_column(&df, "m").unwrap(), ["a", "b"]);
        assert_eq!(f64_column(&df, "i").unwrap(), [1.0, 2.0]);
        let v = f64_column(&df, "v").unwrap();
        assert!(v[0] == 1.5 && v[1].is_nan());
        assert!(read_csv(dir.path().join("missing.csv")).is_err());
    }
}
