//! BeerAdvocate reviews with aspect ratings and rationale annotations (Lei, Barzilay &
//! Jaakkola 2016; McAuley et al. 2012), the data of Table 1 (learning to explain), in the
//! layout of the official code — and a generator of a look-alike set ([`generate`]).
//!
//! Files (each raw or `.gz`, detected by the gzip magic bytes):
//! * `reviews.aspect1.train.txt`, `reviews.aspect1.heldout.txt` — one review a line,
//!   `s0 s1 s2 s3 s4<TAB>token token ...`: five scores in `[0, 1]` (appearance, aroma,
//!   palate, taste, overall; aroma is [`AROMA`]), read with polars (tab-separated, no
//!   header, no quoting);
//! * `annotations.json` — one JSON object a line (serde_json),
//!   `{"x": [tokens], "y": [5 scores], "0": [[start, end], ...], ..., "4": [...]}`: token
//!   ranges `[start, end)` of each aspect's rationale;
//! * `review+wiki.filtered.200.txt` — `word f1 ... f200` per line.
//!
//! The vocabulary is the official code's ([`Vocab`]): `<PAD>` = 0, `<START>` = 1,
//! `<UNK>` = 2, training tokens from 3 in order of first appearance; held-out words not
//! seen in training map to `<UNK>`, annotation words to `<PAD>` (so they are never counted
//! as selected); words without an embedding get zero vectors. Sequences are padded and
//! truncated at the front (Keras' `pad_sequences(maxlen)` default, "pre"). One difference:
//! the official `text.split(" ")` keeps the line's newline glued to its last token; we
//! strip line endings first.
//!
//! Every malformed line (wrong column count, non-numeric or out-of-range scores, bad
//! JSON, ranges outside the review, embeddings of the wrong width) is a [`BeerError`]
//! naming the file and the line; random and truncated bytes never panic (property
//! tests in `tests/beer.rs`).

mod files;
pub mod generate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use files::{
    format_annotations, format_embeddings, format_reviews, parse_annotations, parse_embeddings,
    read_annotations, read_bytes, read_embeddings, Annotated, Embeddings, Review,
};
#[cfg(feature = "csv")]
pub use files::{parse_reviews, read_reviews};

/// Aspect names, in the order of the five scores.
pub const ASPECTS: [&str; 5] = ["appearance", "aroma", "palate", "taste", "overall"];
/// Index of the aroma aspect (the official `aspect = 1`).
pub const AROMA: usize = 1;
/// Padding token id.
pub const PAD: u32 = 0;
/// Start token id (reserved, as in the official code; not inserted).
pub const START: u32 = 1;
/// Unknown-word token id.
pub const UNK: u32 = 2;
/// Width of the embeddings (the `.200` of the file name).
pub const EMBEDDING_DIM: usize = 200;
/// The official maximum sequence length.
pub const PAPER_MAXLEN: usize = 350;

/// The training reviews.
pub const TRAIN_FILE: &str = "reviews.aspect1.train.txt";
/// The held-out reviews (split into validation and test).
pub const HELDOUT_FILE: &str = "reviews.aspect1.heldout.txt";
/// The reviews with rationale annotations (subset precision).
pub const ANNOTATIONS_FILE: &str = "annotations.json";
/// The word embeddings.
pub const EMBEDDINGS_FILE: &str = "review+wiki.filtered.200.txt";
/// What the generator writes beside the four files: its settings.
pub const GENERATOR_FILE: &str = "GENERATOR.json";

/// The four files (no canonical checksums: the real set is not downloadable here, and a
/// generated one depends on its seed; runs record the checksum of what they read).
pub const FILES: [(&str, &str); 4] = [
    (TRAIN_FILE, ""),
    (HELDOUT_FILE, ""),
    (ANNOTATIONS_FILE, ""),
    (EMBEDDINGS_FILE, ""),
];

/// The BeerAdvocate data set in the table of data sets.
pub const DATASET: super::DataSet = super::DataSet {
    name: "beer",
    description: "BeerAdvocate aspect reviews with rationale annotations (Lei et al. 2016), \
                  or a generated look-alike",
    used_by: &["table1"],
    files: &FILES,
    origin: super::Origin::Generate("imle-paper data generate beer"),
};

/// Why the reviews could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BeerError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why: the error's `source()`, not repeated in its message (anyhow's `{:#}` prints both).
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}, line {line}: {why}")]
    Line {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A file is malformed as a whole.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The official vocabulary: `<PAD>` 0, `<START>` 1, `<UNK>` 2, then every training token
/// in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// `words[id]`.
    pub words: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// The vocabulary of `train`.
    pub fn build(train: &[Review]) -> Self {
        let mut v = Vocab {
            words: ["<PAD>", "<START>", "<UNK>"].map(String::from).to_vec(),
            index: HashMap::new(),
        };
        for r in train {
            for t in &r.tokens {
                if !v.index.contains_key(t) {
                    v.index.insert(t.clone(), v.words.len() as u32);
                    v.words.push(t.clone());
                }
            }
        }
        v
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether only the three special tokens are present.
    pub fn is_empty(&self) -> bool {
        self.words.len() <= 3
    }

    /// The id of `word`, or `oov` if it is not a training token.
    pub fn id(&self, word: &str, oov: u32) -> u32 {
        self.index.get(word).copied().unwrap_or(oov)
    }

    /// The embedding matrix `(len, dim)`: row `id` is the word's vector, zeros for words
    /// without one and for the special tokens.
    pub fn matrix(&self, e: &Embeddings) -> Vec<f32> {
        let mut m = vec![0.0f32; self.len() * e.dim];
        for (i, w) in e.words.iter().enumerate() {
            if let Some(&id) = self.index.get(w) {
                m[id as usize * e.dim..(id as usize + 1) * e.dim]
                    .copy_from_slice(&e.vectors[i * e.dim..(i + 1) * e.dim]);
            }
        }
        m
    }
}

/// Reviews as padded id sequences: `ids[r * maxlen..(r + 1) * maxlen]`, padded and
/// truncated at the front.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Sequence length.
    pub maxlen: usize,
    /// Row-major ids.
    pub ids: Vec<u32>,
    /// Each review's length before padding/truncation.
    pub lens: Vec<usize>,
    /// Each review's aroma score.
    pub y: Vec<f32>,
}

impl Encoded {
    /// `reviews` mapped through `vocab` (unknown words to `oov`).
    pub fn new(reviews: &[Review], vocab: &Vocab, oov: u32, maxlen: usize) -> Self {
        let mut ids = vec![PAD; reviews.len() * maxlen];
        for (r, row) in reviews.iter().zip(ids.chunks_mut(maxlen.max(1))) {
            let toks = &r.tokens[r.tokens.len().saturating_sub(maxlen)..];
            let start = maxlen - toks.len();
            for (slot, t) in row[start..].iter_mut().zip(toks) {
                *slot = vocab.id(t, oov);
            }
        }
        Self {
            maxlen,
            ids,
            lens: reviews.iter().map(|r| r.tokens.len()).collect(),
            y: reviews.iter().map(|r| r.scores[AROMA]).collect(),
        }
    }

    /// Number of reviews.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The token index (in the original review) at sequence position `p` of review `r`,
    /// or `None` for padding: with front padding/truncation, `p + len - maxlen`.
    pub fn token_index(&self, r: usize, p: usize) -> Option<usize> {
        (p + self.lens[r]).checked_sub(self.maxlen)
    }

    /// The rows `idx` as one batch.
    pub fn subset(&self, idx: &[usize]) -> Encoded {
        Encoded {
            maxlen: self.maxlen,
            ids: idx
                .iter()
                .flat_map(|&i| {
                    self.ids[i * self.maxlen..(i + 1) * self.maxlen]
                        .iter()
                        .copied()
                })
                .collect(),
            lens: idx.iter().map(|&i| self.lens[i]).collect(),
            y: idx.iter().map(|&i| self.y[i]).collect(),
        }
    }
}

/// The loaded data set, encoded.
#[derive(Debug, Clone)]
pub struct Beer {
    /// Where the files were found.
    pub dir: PathBuf,
    /// The vocabulary.
    pub vocab: Vocab,
    /// The embedding matrix `(vocab.len(), EMBEDDING_DIM)`.
    pub embeddings: Vec<f32>,
    /// Share of vocabulary words with an embedding.
    pub embedded_share: f64,
    /// Training reviews.
    pub train: Encoded,
    /// Held-out reviews (validation + test).
    pub heldout: Encoded,
    /// Annotated reviews (OOV → `<PAD>`).
    pub annotated: Encoded,
    /// Their aroma ranges.
    pub aroma_ranges: Vec<Vec<(usize, usize)>>,
    /// Their tokens (for pictures).
    pub annotated_tokens: Vec<Vec<String>>,
    /// The generator's settings, if the set was generated.
    pub generator: Option<serde_json::Value>,
    /// MD5 of the four files' contents.
    pub checksum: String,
}

/// Where the data are: the files found as [`DATASET`] says, else (no `data_dir` given)
/// the default look-alike set, generated into `datasets/beer/` on first use;
/// `(dir, generator settings if generated)`. A named `data_dir` without the files is an
/// error.
pub fn find_or_generate(
    data_dir: Option<&Path>,
) -> anyhow::Result<(PathBuf, Option<generate::GeneratorConfig>)> {
    static REF: &super::DataSet = &DATASET;
    let dir = match REF.locate(data_dir) {
        Ok(d) => d,
        Err(e) if data_dir.is_some() => return Err(e.into()),
        Err(_) => {
            let dir = PathBuf::from("datasets/beer");
            let cfg = generate::GeneratorConfig::default();
            generate::write(&cfg, &dir)?;
            println!(
                "no BeerAdvocate files found; generated the default look-alike set (seed {}) \
                 into {} (`imle-paper data generate beer` does this)",
                cfg.seed,
                dir.display()
            );
            dir
        }
    };
    let generated = super::generator_record(&dir.join(GENERATOR_FILE))?;
    Ok((dir, generated))
}

/// Finds the data set ([`super::DataSet::locate`]) and loads it with sequences of
/// `maxlen`.
#[cfg(feature = "csv")]
pub fn load(data_dir: Option<&Path>, maxlen: usize) -> anyhow::Result<Beer> {
    static REF: &super::DataSet = &DATASET;
    let dir = REF.locate(data_dir)?;
    load_from(&dir, maxlen)
}

/// Loads the four files of `dir` (see the module documentation).
#[cfg(feature = "csv")]
pub fn load_from(dir: &Path, maxlen: usize) -> anyhow::Result<Beer> {
    if maxlen == 0 {
        anyhow::bail!("the maximum sequence length must be at least 1");
    }
    let file = |name: &str| {
        super::DataSet::find_file(dir, name)
            .ok_or_else(|| anyhow::anyhow!("{}: missing {name} (raw or .gz)", dir.display()))
    };
    let paths = [
        file(TRAIN_FILE)?,
        file(HELDOUT_FILE)?,
        file(ANNOTATIONS_FILE)?,
        file(EMBEDDINGS_FILE)?,
    ];
    let bytes: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| read_bytes(p))
        .collect::<Result<_, _>>()?;
    let train = parse_reviews(&bytes[0], &paths[0])?;
    let heldout = parse_reviews(&bytes[1], &paths[1])?;
    let annotated = parse_annotations(&bytes[2], &paths[2])?;
    let emb = parse_embeddings(&bytes[3], &paths[3], EMBEDDING_DIM)?;
    let vocab = Vocab::build(&train);
    let embeddings = vocab.matrix(&emb);
    let embedded = embeddings
        .chunks(EMBEDDING_DIM)
        .skip(3)
        .filter(|r| r.iter().any(|&v| v != 0.0))
        .count();
    let generator = std::fs::read_to_string(dir.join(GENERATOR_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let reviews: Vec<Review> = annotated.iter().map(|a| a.review.clone()).collect();
    Ok(Beer {
        dir: dir.to_path_buf(),
        embedded_share: embedded as f64 / (vocab.len() - 3).max(1) as f64,
        train: Encoded::new(&train, &vocab, UNK, maxlen),
        heldout: Encoded::new(&heldout, &vocab, UNK, maxlen),
        annotated: Encoded::new(&reviews, &vocab, PAD, maxlen),
        aroma_ranges: annotated.iter().map(|a| a.ranges[AROMA].clone()).collect(),
        annotated_tokens: reviews.into_iter().map(|r| r.tokens).collect(),
        vocab,
        embeddings,
        generator,
        checksum: super::checksum(&bytes.iter().map(|b| &b[..]).collect::<Vec<_>>()),
    })
}
