//! A generator of BeerAdvocate-like aspect reviews with ground-truth rationales
//! (`imle-paper data generate beer --seed S`), written in exactly the real files' layout
//! so that one loader serves both.
//!
//! A review is a shuffled list of sentences: one or two about aroma, one about each other
//! aspect (sometimes two, sometimes none), and a few fillers. An aspect sentence names the
//! aspect (`aroma`, `nose`, ...) and describes it with aspect-specific adjectives of one of
//! five polarity levels (`skunky` .. `fragrant`), often with a generic sentiment word of
//! the same level shared by all aspects (`awful` .. `excellent`). The review's aroma level
//! is uniform on 0..4; every other aspect's level is the aroma level moved by -1, 0 or +1
//! (probabilities 1/4, 1/2, 1/4), so the other aspects' words predict the aroma score
//! too — a model can score a fair MSE while explaining with the wrong words, which subset
//! precision exposes. Scores are `0.1 + 0.2 · level` plus Gaussian noise (σ = 0.05),
//! clipped to `[0, 1]` and rounded to two decimals. A share of the reviews is padded with
//! further sentences beyond the default maximum length. The annotation of a review is the
//! token ranges of its sentences about each aspect.
//!
//! Embeddings (200-d) cluster by aspect and by polarity: aspect words lie near their
//! aspect's direction, adjectives and generic sentiment words along a shared polarity
//! direction scaled by `(level − 2) / 2`, plus isotropic noise; a few filler words have no
//! embedding (zero vectors, as the real file's missing words).
//!
//! Deterministic per seed; the training, held-out and annotated reviews draw from
//! separate ChaCha8 streams of the seed, the embeddings from their own seed (shared by all
//! review seeds by default, so that every generated set speaks the same word space). See `datasets/beer/README.md` for what
//! this cannot imitate of real reviews.

use super::{Annotated, Embeddings, Review, EMBEDDING_DIM};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The generator's settings (written to `GENERATOR.json` beside the files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Seed.
    pub seed: u64,
    /// Training reviews.
    pub train: usize,
    /// Held-out reviews (validation + test).
    pub heldout: usize,
    /// Annotated reviews.
    pub annotated: usize,
    /// Share of reviews made longer than `long_length` tokens.
    pub long_share: f64,
    /// The length the long reviews exceed (the default maximum length of a generated set).
    pub long_length: usize,
    /// Seed of the embeddings: one word space for all review seeds (0), so that a model
    /// trained on one generated set evaluates on another.
    pub embedding_seed: u64,
}

impl Default for GeneratorConfig {
    /// 2,500 / 1,500 / 400 reviews, 8 % longer than 150 tokens, seeds 0: Table 1's whole
    /// grid (13 rows x 5 runs x 20 epochs) in about 2.5 hours on 2 cores.
    fn default() -> Self {
        Self {
            seed: 0,
            train: 2500,
            heldout: 1500,
            annotated: 400,
            long_share: 0.08,
            long_length: 150,
            embedding_seed: 0,
        }
    }
}

/// Aspect nouns, per aspect (appearance, aroma, palate, taste, overall).
pub const NOUNS: [&[&str]; 5] = [
    &["appearance", "color", "head", "lacing", "look"],
    &["aroma", "smell", "nose", "scent", "bouquet"],
    &["mouthfeel", "palate", "body", "carbonation", "texture"],
    &["taste", "flavor", "finish", "aftertaste"],
    &["drinkability", "verdict", "experience", "impression"],
];

/// Aspect adjectives per aspect and polarity level 0 (worst) .. 4 (best).
pub const ADJECTIVES: [[&[&str]; 5]; 5] = [
    [
        &["murky", "muddy", "lifeless"],
        &["dull", "hazy", "cloudy"],
        &["amber", "golden", "copper"],
        &["bright", "clear", "frothy"],
        &["brilliant", "gorgeous", "radiant"],
    ],
    [
        &["skunky", "rancid", "putrid"],
        &["stale", "musty", "faint"],
        &["grainy", "malty", "earthy"],
        &["fruity", "hoppy", "floral"],
        &["fragrant", "aromatic", "perfumed"],
    ],
    [
        &["watery", "flat", "harsh"],
        &["thin", "fizzy", "prickly"],
        &["medium", "moderate", "light"],
        &["creamy", "smooth", "silky"],
        &["velvety", "luscious", "plush"],
    ],
    [
        &["sour", "metallic", "vile"],
        &["bland", "weak", "sugary"],
        &["sweet", "bready", "toasty"],
        &["tasty", "crisp", "rich"],
        &["delicious", "complex", "layered"],
    ],
    [
        &["undrinkable", "regrettable", "pointless"],
        &["forgettable", "mediocre", "disappointing"],
        &["decent", "passable", "drinkable"],
        &["enjoyable", "solid", "recommendable"],
        &["outstanding", "exceptional", "memorable"],
    ],
];

/// Generic sentiment words per level, shared by all aspects.
pub const GENERIC: [&[&str]; 5] = [
    &["awful", "terrible", "horrible"],
    &["bad", "poor", "meh"],
    &["okay", "fine", "average"],
    &["good", "nice", "pleasant"],
    &["great", "amazing", "excellent"],
];

/// Intensifiers (fillers inside aspect sentences).
pub const INTENSIFIERS: &[&str] = &["quite", "really", "very", "rather", "fairly", "somewhat"];

/// Filler words of the filler sentences.
pub const FILLERS: &[&str] = &[
    "poured", "from", "a", "bottle", "into", "glass", "the", "this", "beer", "it", "i", "had",
    "at", "bar", "with", "friends", "last", "night", "bought", "on", "tap", "served", "cold",
    "pint", "my", "first", "one", "of", "these", "was", "picked", "up", "store", "label", "says",
    "brewed", "in", "year", "tried", "today", "lol", "tbh", "imo",
];

/// Filler words without an embedding (as the real file lacks some words).
pub const UNEMBEDDED: &[&str] = &["lol", "tbh", "imo"];

/// One sentence: its tokens and the aspect it describes (None: filler).
struct Sentence {
    tokens: Vec<String>,
    aspect: Option<usize>,
}

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words[rng.gen_range(0..words.len())]
}

/// A sentence about `aspect` at polarity `level`.
fn aspect_sentence(rng: &mut ChaCha8Rng, aspect: usize, level: usize) -> Sentence {
    let noun = pick(rng, NOUNS[aspect]);
    let adj = ADJECTIVES[aspect][level];
    let a1 = pick(rng, adj);
    let mut a2 = pick(rng, adj);
    if a2 == a1 {
        a2 = adj[(adj.iter().position(|w| *w == a1).unwrap_or(0) + 1) % adj.len()];
    }
    let generic = rng.gen_bool(0.6).then(|| pick(rng, GENERIC[level]));
    let intens = rng.gen_bool(0.5).then(|| pick(rng, INTENSIFIERS));
    let mut t: Vec<&str> = Vec::new();
    match rng.gen_range(0..3) {
        0 => {
            t.extend(["the", noun, "is"]);
            t.extend(intens);
            t.push(a1);
            if rng.gen_bool(0.5) {
                t.extend(["and", a2]);
            }
            if let Some(g) = generic {
                t.extend([",", g]);
            }
        }
        1 => {
            t.extend(generic);
            t.extend([noun, ","]);
            t.extend(intens);
            t.extend([a1, "and", a2]);
        }
        _ => {
            t.extend(["the", noun, "has", "some", a1, "notes"]);
            if let Some(g) = generic {
                t.extend([",", "overall", g]);
            }
        }
    }
    t.push(".");
    Sentence {
        tokens: t.into_iter().map(String::from).collect(),
        aspect: Some(aspect),
    }
}

fn filler_sentence(rng: &mut ChaCha8Rng) -> Sentence {
    let n = rng.gen_range(4..9);
    let mut tokens: Vec<String> = (0..n).map(|_| pick(rng, FILLERS).to_string()).collect();
    tokens.push(".".into());
    Sentence {
        tokens,
        aspect: None,
    }
}

/// The score of a polarity level: `0.1 + 0.2 · level + N(0, 0.05)`, clipped, 2 decimals.
fn score(rng: &mut ChaCha8Rng, level: usize) -> f32 {
    let noise: f64 = Normal::new(0.0, 0.05).expect("valid σ").sample(rng);
    let v = (0.1 + 0.2 * level as f64 + noise).clamp(0.0, 1.0);
    ((v * 100.0).round() / 100.0) as f32
}

/// One review and its rationale ranges.
fn review(rng: &mut ChaCha8Rng, cfg: &GeneratorConfig) -> Annotated {
    let aroma = rng.gen_range(0..5usize);
    let mut levels = [aroma; 5];
    for (a, l) in levels.iter_mut().enumerate() {
        if a != super::AROMA {
            let d: i64 = [-1, 0, 0, 1][rng.gen_range(0..4)];
            *l = (aroma as i64 + d).clamp(0, 4) as usize;
        }
    }
    let mut sentences = Vec::new();
    for _ in 0..if rng.gen_bool(0.7) { 1 } else { 2 } {
        sentences.push(aspect_sentence(rng, super::AROMA, aroma));
    }
    for (a, &l) in levels.iter().enumerate() {
        if a == super::AROMA {
            continue;
        }
        let n = match rng.gen_range(0..10) {
            0 => 0,
            9 => 2,
            _ => 1,
        };
        for _ in 0..n {
            sentences.push(aspect_sentence(rng, a, l));
        }
    }
    for _ in 0..rng.gen_range(1..4) {
        sentences.push(filler_sentence(rng));
    }
    if rng.gen_bool(cfg.long_share) {
        let target = cfg.long_length + rng.gen_range(1..=cfg.long_length / 2 + 1);
        while sentences.iter().map(|s| s.tokens.len()).sum::<usize>() <= target {
            let s = if rng.gen_bool(0.5) {
                filler_sentence(rng)
            } else {
                let a = [0, 2, 3, 4][rng.gen_range(0..4)];
                aspect_sentence(rng, a, levels[a])
            };
            sentences.push(s);
        }
    }
    sentences.shuffle(rng);
    let mut tokens = Vec::new();
    let mut ranges: [Vec<(usize, usize)>; 5] = Default::default();
    for s in sentences {
        let start = tokens.len();
        tokens.extend(s.tokens);
        if let Some(a) = s.aspect {
            ranges[a].push((start, tokens.len()));
        }
    }
    let mut scores = [0.0f32; 5];
    for (s, &l) in scores.iter_mut().zip(&levels) {
        *s = score(rng, l);
    }
    Annotated {
        review: Review { scores, tokens },
        ranges,
    }
}

/// `n` reviews from the stream `tag` of `cfg.seed`.
pub fn reviews(cfg: &GeneratorConfig, tag: &str, n: usize) -> Vec<Annotated> {
    let mut rng = ChaCha8Rng::seed_from_u64(crate::run::derive_seed(cfg.seed, tag, 0));
    (0..n).map(|_| review(&mut rng, cfg)).collect()
}

/// The embeddings of every generated word but [`UNEMBEDDED`] (see the module docs).
pub fn embeddings(cfg: &GeneratorConfig) -> Embeddings {
    let mut rng =
        ChaCha8Rng::seed_from_u64(crate::run::derive_seed(cfg.embedding_seed, "embeddings", 0));
    let dim = EMBEDDING_DIM;
    let unit = |rng: &mut ChaCha8Rng| -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let aspects: Vec<Vec<f32>> = (0..5).map(|_| unit(&mut rng)).collect();
    let polarity = unit(&mut rng);
    let mut e = Embeddings {
        words: Vec::new(),
        dim,
        vectors: Vec::new(),
    };
    let mut add =
        |word: &str, aspect: Option<usize>, level: Option<usize>, rng: &mut ChaCha8Rng| {
            if e.words.iter().any(|w| w == word) {
                return;
            }
            let noise = unit(rng);
            let p = level.map_or(0.0, |l| (l as f32 - 2.0) / 2.0);
            let v: Vec<f32> = (0..dim)
                .map(|i| aspect.map_or(0.0, |a| aspects[a][i]) + p * polarity[i] + 0.4 * noise[i])
                .collect();
            e.words.push(word.to_string());
            e.vectors.extend(v);
        };
    for a in 0..5 {
        for w in NOUNS[a] {
            add(w, Some(a), None, &mut rng);
        }
        for (l, words) in ADJECTIVES[a].iter().enumerate() {
            for w in *words {
                add(w, Some(a), Some(l), &mut rng);
            }
        }
    }
    for (l, words) in GENERIC.iter().enumerate() {
        for w in *words {
            add(w, None, Some(l), &mut rng);
        }
    }
    let punctuation = [".", ",", "and", "is", "has", "some", "notes", "overall"];
    for w in FILLERS.iter().chain(INTENSIFIERS).chain(&punctuation) {
        if !UNEMBEDDED.contains(w) {
            add(w, None, None, &mut rng);
        }
    }
    e
}

/// Writes the four files and `GENERATOR.json` into `dir` (created if needed), atomically
/// per file; returns the files written.
pub fn write(cfg: &GeneratorConfig, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use crate::output::write_atomic;
    let train: Vec<Review> = reviews(cfg, "beer-train", cfg.train)
        .into_iter()
        .map(|a| a.review)
        .collect();
    let heldout: Vec<Review> = reviews(cfg, "beer-heldout", cfg.heldout)
        .into_iter()
        .map(|a| a.review)
        .collect();
    let annotated = reviews(cfg, "beer-annotated", cfg.annotated);
    let files = [
        (super::TRAIN_FILE, super::format_reviews(&train)),
        (super::HELDOUT_FILE, super::format_reviews(&heldout)),
        (
            super::ANNOTATIONS_FILE,
            super::format_annotations(&annotated),
        ),
        (
            super::EMBEDDINGS_FILE,
            super::format_embeddings(&embeddings(cfg)),
        ),
        (
            super::GENERATOR_FILE,
            serde_json::to_string_pretty(cfg)? + "\n",
        ),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())?;
        out.push(p);
    }
    Ok(out)
}
