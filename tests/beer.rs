//! The BeerAdvocate-layout loaders (good, corrupt, truncated, random and missing files),
//! the official vocabulary and padding rules, and the generator (deterministic, separate
//! streams, embeddings that cluster by aspect and polarity).

use imle_paper::data::beer::{self, generate, Encoded, Review, Vocab, PAD, UNK};
use proptest::prelude::*;
use std::path::Path;

fn p() -> &'static Path {
    Path::new("test-file")
}

#[test]
fn a_review_table_parses_with_polars() {
    let text = "0.1 0.5 0.2 0.3 0.4\tthe aroma is fragrant .\n1 0 0.25 0.5 0.75\tmeh\n";
    let r = beer::parse_reviews(text.as_bytes(), p()).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].scores, [0.1, 0.5, 0.2, 0.3, 0.4]);
    assert_eq!(r[0].tokens, ["the", "aroma", "is", "fragrant", "."]);
    assert_eq!(r[1].tokens, ["meh"]);
    // Quotes are ordinary characters (no quoting), CRLF line ends are stripped.
    let q = beer::parse_reviews(b"0 0 0 0 0\tsay \"hi\" 'x\r\n", p()).unwrap();
    assert_eq!(q[0].tokens, ["say", "\"hi\"", "'x"]);
}

#[test]
fn bad_review_lines_name_the_file_and_line() {
    for (text, line, why) in [
        (
            "0 0 0 0 0\tok\n0 0 0 0\tfour scores\n",
            2,
            "expected 5 scores",
        ),
        ("0 0 0 0 x\tbad\n", 1, "not a number"),
        ("0 0 0 0 1.5\tbig\n", 1, "outside [0, 1]"),
        (
            "0 0 0 0 0\tok\nno tab here\n",
            2,
            "two tab-separated columns",
        ),
        ("0 0 0 0 0\ta\tb\n", 1, "two tab-separated columns"),
        ("0 0 0 0 0\tok\n\n0 0 0 0 0\tok\n", 2, "empty line"),
        ("0 0 0 0 0\t   \n", 1, "without tokens"),
    ] {
        let e = beer::parse_reviews(text.as_bytes(), p())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("line {line}")) && e.contains(why),
            "{text:?}: {e}"
        );
        assert!(e.contains("test-file"), "{e}");
    }
    assert!(beer::parse_reviews(b"", p())
        .unwrap_err()
        .to_string()
        .contains("no reviews"));
    assert!(beer::parse_reviews(&[0xff, 0xfe, b'\t'], p())
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
}

#[test]
fn annotations_parse_and_bad_ranges_are_errors() {
    let good = r#"{"x": ["a", "b", "c"], "y": [0, 0.5, 1, 0, 0], "0": [], "1": [[0, 2]], "2": [], "3": [[2, 3]], "4": []}"#;
    let a = beer::parse_annotations(good.as_bytes(), p()).unwrap();
    assert_eq!(a[0].ranges[1], [(0, 2)]);
    assert_eq!(a[0].review.tokens, ["a", "b", "c"]);
    for (text, why) in [
        (good.replace("[[0, 2]]", "[[0, 4]]"), "inside the 3 tokens"),
        (good.replace("[[0, 2]]", "[[2, 2]]"), "inside the 3 tokens"),
        (good.replace("[[0, 2]]", "[[0]]"), "inside the 3 tokens"),
        (good.replace("[[0, 2]]", "\"no\""), "not a list"),
        (
            good.replace(r#", "4": []"#, ""),
            "no ranges for aspect \"4\"",
        ),
        (good.replace("0.5, 1, 0, 0]", "0.5]"), "2 scores"),
        (good.replace("0.5, 1", "0.5, 2"), "outside [0, 1]"),
        (good[..40].to_string(), "line 1"),
    ] {
        let e = beer::parse_annotations(text.as_bytes(), p())
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{text}: {e}");
    }
}

#[test]
fn embeddings_of_the_wrong_width_or_non_numbers_are_errors() {
    let e = beer::parse_embeddings(b"a 1 2 3\nb 4 5 6\n", p(), 3).unwrap();
    assert_eq!(e.words, ["a", "b"]);
    assert_eq!(e.vectors, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let w = beer::parse_embeddings(b"a 1 2 3\nb 4 5\n", p(), 3)
        .unwrap_err()
        .to_string();
    assert!(
        w.contains("line 2") && w.contains("2 values, expected 3"),
        "{w}"
    );
    let n = beer::parse_embeddings(b"a 1 nan 3\n", p(), 3)
        .unwrap_err()
        .to_string();
    assert!(n.contains("not a finite number"), "{n}");
}

fn review(tokens: &[&str], aroma: f32) -> Review {
    Review {
        scores: [0.0, aroma, 0.0, 0.0, 0.0],
        tokens: tokens.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn the_vocabulary_and_padding_follow_the_official_code() {
    let train = [review(&["b", "a", "b"], 0.3), review(&["c"], 0.7)];
    let v = Vocab::build(&train);
    assert_eq!(v.words, ["<PAD>", "<START>", "<UNK>", "b", "a", "c"]);
    let held = [review(&["a", "zzz", "c", "b", "a"], 0.5)];
    // Front truncation keeps the last 4 tokens; unknown words are UNK in held-out data
    // and PAD in annotations.
    let e = Encoded::new(&held, &v, UNK, 4);
    assert_eq!(e.ids, [UNK, 5, 3, 4]);
    assert_eq!(Encoded::new(&held, &v, PAD, 4).ids, [PAD, 5, 3, 4]);
    assert_eq!(e.token_index(0, 0), Some(1));
    // Front padding.
    let e = Encoded::new(&train, &v, UNK, 4);
    assert_eq!(e.ids, [PAD, 3, 4, 3, PAD, PAD, PAD, 5]);
    assert_eq!(e.token_index(0, 0), None);
    assert_eq!(e.token_index(0, 1), Some(0));
    assert_eq!(e.token_index(1, 3), Some(0));
    assert_eq!(e.y, [0.3, 0.7]);
    // Words without an embedding (and the special tokens) are zero vectors.
    let emb = beer::parse_embeddings(b"a 1 1\nc 2 2\nnot-in-vocab 3 3\n", p(), 2).unwrap();
    assert_eq!(
        v.matrix(&emb),
        [0., 0., 0., 0., 0., 0., 0., 0., 1., 1., 2., 2.]
    );
}

fn write_set(dir: &Path) -> generate::GeneratorConfig {
    let cfg = generate::GeneratorConfig {
        train: 30,
        heldout: 10,
        annotated: 6,
        ..Default::default()
    };
    generate::write(&cfg, dir).unwrap();
    cfg
}

#[test]
fn a_generated_set_loads_raw_or_gzipped_and_missing_or_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path());
    let data = beer::load_from(dir.path(), 150).unwrap();
    assert_eq!(
        (data.train.len(), data.heldout.len(), data.annotated.len()),
        (30, 10, 6)
    );
    assert!(data.generator.is_some());
    assert!(
        data.embedded_share > 0.9 && data.embedded_share < 1.0,
        "{}",
        data.embedded_share
    );
    // The same files gzipped load to the same data.
    let gz = tempfile::tempdir().unwrap();
    for f in beer::FILES.map(|f| f.0) {
        let raw = std::fs::read(dir.path().join(f)).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        std::fs::write(gz.path().join(format!("{f}.gz")), enc.finish().unwrap()).unwrap();
    }
    let z = beer::load_from(gz.path(), 150).unwrap();
    assert_eq!((z.train.ids, z.checksum), (data.train.ids, data.checksum));
    // A missing file is named; a corrupt one names its file and line.
    std::fs::remove_file(dir.path().join(beer::ANNOTATIONS_FILE)).unwrap();
    let e = format!("{:#}", beer::load_from(dir.path(), 150).unwrap_err());
    assert!(e.contains("missing annotations.json"), "{e}");
    write_set(dir.path());
    let held = dir.path().join(beer::HELDOUT_FILE);
    let mut text = std::fs::read_to_string(&held).unwrap();
    text.push_str("0.5 0.5\tshort scores\n");
    std::fs::write(&held, text).unwrap();
    let e = format!("{:#}", beer::load_from(dir.path(), 150).unwrap_err());
    assert!(
        e.contains("reviews.aspect1.heldout.txt, line 11") && e.contains("expected 5 scores"),
        "{e}"
    );
    // An explicit --data-dir without the files says how to get them.
    let empty = tempfile::tempdir().unwrap();
    let e = format!("{:#}", beer::load(Some(empty.path()), 150).unwrap_err());
    assert!(e.contains("imle-paper data generate beer"), "{e}");
}

#[test]
fn the_generator_is_deterministic_with_separate_streams_and_real_rationales() {
    let cfg = generate::GeneratorConfig::default();
    let a = generate::reviews(&cfg, "beer-train", 50);
    assert_eq!(a, generate::reviews(&cfg, "beer-train", 50));
    assert_ne!(a, generate::reviews(&cfg, "beer-heldout", 50));
    let other = generate::GeneratorConfig {
        seed: 1,
        ..cfg.clone()
    };
    assert_ne!(a, generate::reviews(&other, "beer-train", 50));
    // The embeddings keep their own seed: one word space for every review seed.
    assert_eq!(generate::embeddings(&cfg), generate::embeddings(&other));
    let many = generate::reviews(&cfg, "beer-train", 2000);
    let long = many
        .iter()
        .filter(|r| r.review.tokens.len() > cfg.long_length)
        .count();
    assert!(
        (100..260).contains(&long),
        "{long} of 2000 reviews are long"
    );
    for r in &many {
        // Every review has an aroma rationale made of aroma words.
        assert!(!r.ranges[beer::AROMA].is_empty());
        for &(s, e) in &r.ranges[beer::AROMA] {
            let words = &r.review.tokens[s..e];
            assert!(
                words
                    .iter()
                    .any(|w| generate::NOUNS[beer::AROMA].contains(&w.as_str())),
                "{words:?}"
            );
        }
    }
    // The aroma score follows the aroma adjectives' level (0.1 + 0.2·level, σ = 0.05).
    let level = |r: &beer::Annotated| -> usize {
        let (s, e) = r.ranges[beer::AROMA][0];
        r.review.tokens[s..e]
            .iter()
            .find_map(|w| {
                (0..5).find(|&l| generate::ADJECTIVES[beer::AROMA][l].contains(&w.as_str()))
            })
            .expect("an aroma adjective")
    };
    let err: f64 = many
        .iter()
        .map(|r| (r.review.scores[beer::AROMA] as f64 - (0.1 + 0.2 * level(r) as f64)).powi(2))
        .sum::<f64>()
        / many.len() as f64;
    assert!(err < 0.05f64.powi(2) * 1.3, "mean squared deviation {err}");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn generated_embeddings_cluster_by_aspect_and_by_polarity() {
    let e = generate::embeddings(&generate::GeneratorConfig::default());
    let vec_of = |w: &str| -> &[f32] {
        let i = e
            .words
            .iter()
            .position(|x| x == w)
            .unwrap_or_else(|| panic!("{w}"));
        &e.vectors[i * e.dim..(i + 1) * e.dim]
    };
    // Aroma nouns are closer to each other than to palate nouns.
    let same = cosine(vec_of("aroma"), vec_of("smell"));
    let other = cosine(vec_of("aroma"), vec_of("body"));
    assert!(same > 0.6 && other < 0.3, "{same} {other}");
    // Generic sentiment words: same polarity close, opposite polarity far.
    assert!(cosine(vec_of("great"), vec_of("amazing")) > 0.5);
    assert!(cosine(vec_of("great"), vec_of("awful")) < -0.3);
    // Adjectives carry both: a good aroma word is nearer a good generic word than a bad one.
    assert!(
        cosine(vec_of("fragrant"), vec_of("great")) > cosine(vec_of("fragrant"), vec_of("awful"))
    );
    for w in generate::UNEMBEDDED {
        assert!(!e.words.iter().any(|x| x == w));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = beer::parse_reviews(&bytes, p());
        let _ = beer::parse_annotations(&bytes, p());
        let _ = beer::parse_embeddings(&bytes, p(), 3);
    }

    #[test]
    fn truncated_files_are_errors_or_shorter_data(cut in 0usize..4000, which in 0usize..3) {
        let cfg = generate::GeneratorConfig { train: 8, heldout: 1, annotated: 6, ..Default::default() };
        let text = match which {
            0 => beer::format_reviews(&generate::reviews(&cfg, "t", 8).into_iter().map(|a| a.review).collect::<Vec<_>>()),
            1 => beer::format_annotations(&generate::reviews(&cfg, "t", 6)),
            _ => beer::format_embeddings(&generate::embeddings(&cfg)),
        };
        let cut = cut.min(text.len());
        let bytes = &text.as_bytes()[..cut];
        match which {
            0 => { let _ = beer::parse_reviews(bytes, p()); }
            1 => { let _ = beer::parse_annotations(bytes, p()); }
            _ => {
                // A line cut inside its vector has too few values: an error, not a short vector.
                if let Ok(e) = beer::parse_embeddings(bytes, p(), beer::EMBEDDING_DIM) {
                    prop_assert_eq!(e.vectors.len(), e.words.len() * beer::EMBEDDING_DIM);
                }
            }
        }
    }
}
