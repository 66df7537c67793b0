//! The four files of the data set, as the official code's layout has them: the review
//! tables (`scores<TAB>tokens`), the annotations (JSON lines) and the word embeddings
//! (`word v1 .. v200`); parsers that return a typed error for any bad input, and writers
//! of the same layout (the generator's).

use super::*;

fn line_err(path: &Path, line: usize, why: impl Into<String>) -> BeerError {
    BeerError::Line {
        path: path.to_path_buf(),
        line,
        why: why.into(),
    }
}

fn file_err(path: &Path, why: impl Into<String>) -> BeerError {
    BeerError::File {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// One review: its five scores and its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Scores in `[0, 1]`, in [`ASPECTS`] order.
    pub scores: [f32; 5],
    /// The tokens.
    pub tokens: Vec<String>,
}

/// One annotated review: its tokens, scores and each aspect's rationale ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotated {
    /// The review.
    pub review: Review,
    /// Per aspect, token ranges `[start, end)`.
    pub ranges: [Vec<(usize, usize)>; 5],
}

/// The bytes of `path`, gunzipped when they start with the gzip magic bytes.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, BeerError> {
    crate::data::read_bytes(path).map_err(|source| BeerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses five scores `s0 s1 s2 s3 s4`, each a finite number in `[0, 1]`.
#[cfg(feature = "csv")]
fn parse_scores(s: &str) -> Result<[f32; 5], String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!("expected 5 scores, found {}", parts.len()));
    }
    let mut out = [0.0f32; 5];
    for (o, p) in out.iter_mut().zip(&parts) {
        let v: f32 = p
            .parse()
            .map_err(|_| format!("score '{p}' is not a number"))?;
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("score {p} is outside [0, 1]"));
        }
        *o = v;
    }
    Ok(out)
}

/// Parses a review table (`s0 .. s4<TAB>tokens` per line) with polars: tab-separated, no
/// header, no quoting, two string columns. `path` names the source in errors. (Needs
/// the `csv` feature, as everything that reads the reviews.)
#[cfg(feature = "csv")]
pub fn parse_reviews(bytes: &[u8], path: &Path) -> Result<Vec<Review>, BeerError> {
    use polars::prelude::*;
    let text = std::str::from_utf8(bytes).map_err(|e| file_err(path, format!("not UTF-8: {e}")))?;
    // polars skips blank lines, so line numbers are kept by the pre-check below; it also
    // reports ragged rows without a line, hence the tab count per line first.
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            return Err(line_err(path, i + 1, "empty line"));
        }
        let tabs = line.matches('\t').count();
        if tabs != 1 {
            return Err(line_err(
                path,
                i + 1,
                format!(
                    "expected two tab-separated columns (scores, tokens), found {}",
                    tabs + 1
                ),
            ));
        }
        lines.push(i + 1);
    }
    if lines.is_empty() {
        return Err(file_err(path, "no reviews"));
    }
    let schema = Schema::from_iter([
        Field::new("scores".into(), DataType::String),
        Field::new("text".into(), DataType::String),
    ]);
    let df = CsvReadOptions::default()
        .with_has_header(false)
        .with_schema(Some(Arc::new(schema)))
        .with_parse_options(
            CsvParseOptions::default()
                .with_separator(b'\t')
                .with_quote_char(None),
        )
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| file_err(path, format!("not a review table: {e}")))?;
    if df.height() != lines.len() {
        return Err(file_err(
            path,
            format!("{} lines but polars read {} rows", lines.len(), df.height()),
        ));
    }
    let col = |name: &str| -> Result<Vec<Option<String>>, BeerError> {
        let c = df
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(|e| file_err(path, e.to_string()))?;
        Ok(c.iter().map(|v| v.map(str::to_string)).collect())
    };
    let (scores, text) = (col("scores")?, col("text")?);
    let mut out = Vec::with_capacity(lines.len());
    for ((s, t), &line) in scores.into_iter().zip(text).zip(&lines) {
        let scores =
            parse_scores(s.as_deref().unwrap_or("")).map_err(|why| line_err(path, line, why))?;
        let tokens: Vec<String> = t
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        if tokens.is_empty() {
            return Err(line_err(path, line, "a review without tokens"));
        }
        out.push(Review { scores, tokens });
    }
    Ok(out)
}

/// Reads a review table (raw or `.gz`), see [`parse_reviews`].
#[cfg(feature = "csv")]
pub fn read_reviews(path: &Path) -> Result<Vec<Review>, BeerError> {
    parse_reviews(&read_bytes(path)?, path)
}

/// Parses `annotations.json`: one JSON object a line with `x` (tokens), `y` (5 scores)
/// and `"0"` .. `"4"` (ranges `[start, end)` with `start < end <= len(x)`).
pub fn parse_annotations(bytes: &[u8], path: &Path) -> Result<Vec<Annotated>, BeerError> {
    #[derive(serde::Deserialize)]
    struct Line {
        x: Vec<String>,
        y: Vec<f64>,
        #[serde(flatten)]
        ranges: HashMap<String, serde_json::Value>,
    }
    let text = std::str::from_utf8(bytes).map_err(|e| file_err(path, format!("not UTF-8: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| line_err(path, n, e.to_string()))?;
        if l.x.is_empty() {
            return Err(line_err(path, n, "\"x\" has no tokens"));
        }
        if l.y.len() != 5 {
            return Err(line_err(
                path,
                n,
                format!("\"y\" has {} scores, expected 5", l.y.len()),
            ));
        }
        let mut scores = [0.0f32; 5];
        for (s, &v) in scores.iter_mut().zip(&l.y) {
            if !(0.0..=1.0).contains(&v) {
                return Err(line_err(path, n, format!("score {v} is outside [0, 1]")));
            }
            *s = v as f32;
        }
        let mut ranges: [Vec<(usize, usize)>; 5] = Default::default();
        for (a, r) in ranges.iter_mut().enumerate() {
            let Some(v) = l.ranges.get(&a.to_string()) else {
                return Err(line_err(path, n, format!("no ranges for aspect \"{a}\"")));
            };
            let pairs: Vec<Vec<usize>> = serde_json::from_value(v.clone()).map_err(|e| {
                line_err(
                    path,
                    n,
                    format!("aspect \"{a}\": not a list of [start, end]: {e}"),
                )
            })?;
            for p in pairs {
                match p[..] {
                    [s, e] if s < e && e <= l.x.len() => r.push((s, e)),
                    _ => {
                        return Err(line_err(
                            path,
                            n,
                            format!(
                            "aspect \"{a}\": range {p:?} is not [start, end) inside the {} tokens",
                            l.x.len()
                        ),
                        ))
                    }
                }
            }
        }
        out.push(Annotated {
            review: Review {
                scores,
                tokens: l.x,
            },
            ranges,
        });
    }
    if out.is_empty() {
        return Err(file_err(path, "no annotated reviews"));
    }
    Ok(out)
}

/// Reads `annotations.json` (raw or `.gz`), see [`parse_annotations`].
pub fn read_annotations(path: &Path) -> Result<Vec<Annotated>, BeerError> {
    parse_annotations(&read_bytes(path)?, path)
}

/// Word embeddings: `words[i]` has the vector `vectors[i * dim..(i + 1) * dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The words, in file order.
    pub words: Vec<String>,
    /// Width.
    pub dim: usize,
    /// Row-major vectors.
    pub vectors: Vec<f32>,
}

/// Parses `word f1 ... f_dim` lines (whitespace-separated, finite numbers). A word seen
/// twice keeps its last vector, as the official code's dict.
pub fn parse_embeddings(bytes: &[u8], path: &Path, dim: usize) -> Result<Embeddings, BeerError> {
    let text = std::str::from_utf8(bytes).map_err(|e| file_err(path, format!("not UTF-8: {e}")))?;
    let mut e = Embeddings {
        words: Vec::new(),
        dim,
        vectors: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let mut parts = line.split_whitespace();
        let Some(word) = parts.next() else { continue };
        let start = e.vectors.len();
        for p in parts {
            let v: f32 = p
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| line_err(path, i + 1, format!("'{p}' is not a finite number")))?;
            e.vectors.push(v);
        }
        let got = e.vectors.len() - start;
        if got != dim {
            return Err(line_err(
                path,
                i + 1,
                format!("'{word}' has {got} values, expected {dim}"),
            ));
        }
        e.words.push(word.to_string());
    }
    if e.words.is_empty() {
        return Err(file_err(path, "no embeddings"));
    }
    Ok(e)
}

/// Reads the embeddings file (raw or `.gz`), see [`parse_embeddings`].
pub fn read_embeddings(path: &Path, dim: usize) -> Result<Embeddings, BeerError> {
    parse_embeddings(&read_bytes(path)?, path, dim)
}

/// Writes a review table line per review (`s0 .. s4<TAB>tokens`).
pub fn format_reviews(reviews: &[Review]) -> String {
    let mut s = String::new();
    for r in reviews {
        let scores: Vec<String> = r.scores.iter().map(|v| format!("{v}")).collect();
        s.push_str(&scores.join(" "));
        s.push('\t');
        s.push_str(&r.tokens.join(" "));
        s.push('\n');
    }
    s
}

/// Writes `annotations.json` lines.
pub fn format_annotations(items: &[Annotated]) -> String {
    let mut s = String::new();
    for a in items {
        let mut obj = serde_json::Map::new();
        obj.insert("x".into(), serde_json::json!(a.review.tokens));
        obj.insert("y".into(), serde_json::json!(a.review.scores));
        for (i, r) in a.ranges.iter().enumerate() {
            let pairs: Vec<[usize; 2]> = r.iter().map(|&(s, e)| [s, e]).collect();
            obj.insert(i.to_string(), serde_json::json!(pairs));
        }
        s.push_str(&serde_json::Value::Object(obj).to_string());
        s.push('\n');
    }
    s
}

/// Writes the embeddings file.
pub fn format_embeddings(e: &Embeddings) -> String {
    let mut s = String::new();
    for (w, v) in e.words.iter().zip(e.vectors.chunks(e.dim)) {
        s.push_str(w);
        for x in v {
            s.push(' ');
            s.push_str(&format!("{x:.5}"));
        }
        s.push('\n');
    }
    s
}
