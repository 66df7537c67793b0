//! Learning to explain (Table 1): subset precision on hand-made examples, a tiny run
//! whose validation MSE falls, and a killed run resumed equal to an uninterrupted one.

use imle_paper::data::beer::{self, generate, Encoded, Review, Vocab, PAD};
use imle_paper::explain::{subset_precision, ExplainConfig, Explainer, Method};
use imle_paper::train::{Learner, RunStamp, Trainer};
use std::sync::Arc;

fn review(tokens: &[&str]) -> Review {
    Review {
        scores: [0.5; 5],
        tokens: tokens.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn subset_precision_counts_non_padding_selections_in_the_ranges() {
    // Vocabulary a, b, c, d; "zzz" is unknown (PAD in annotations, never counted).
    let vocab = Vocab::build(&[review(&["a", "b", "c", "d"])]);
    let reviews = [
        // 3 tokens padded to 5: positions 0, 1 are padding.
        review(&["a", "b", "c"]),
        // 7 tokens truncated to the last 5: positions map to tokens 2..7.
        review(&["a", "b", "c", "d", "a", "b", "zzz"]),
    ];
    let enc = Encoded::new(&reviews, &vocab, PAD, 5);
    assert_eq!(enc.ids[..2], [PAD, PAD]);
    let ranges = vec![vec![(1, 3)], vec![(2, 4), (6, 7)]];
    // Review 0: selects both padding positions (not counted) and tokens 1 ("b", in
    // range) and 2 ("c", in range): 2 correct of max(2, k = 3) = 3.
    // Review 1: selects positions 0 (token 2, in range), 2 (token 4, not) and 4 (token
    // 6, "zzz" = PAD: not counted): 1 correct of max(2, 3) = 3.
    let selected = [1., 1., 0., 1., 1., 1., 0., 1., 0., 1.];
    assert_eq!(subset_precision(&enc, &selected, &ranges, 3), (3, 6));
    // k larger than every review: the denominator is k per review.
    assert_eq!(subset_precision(&enc, &selected, &ranges, 10), (3, 20));
    // Selecting more than k non-padding tokens counts them all.
    let all = [1.0; 10];
    assert_eq!(subset_precision(&enc, &all, &ranges, 1), (2 + 2, 3 + 4));
    // Positions are mapped through the truncation: without it, the official code's
    // index i = position would have called position 0 of review 1 token 0 (outside).
    let first_only = [0., 0., 0., 0., 0., 1., 0., 0., 0., 0.];
    assert_eq!(subset_precision(&enc, &first_only, &ranges, 1), (1, 2));
}

fn tiny_data(maxlen: usize) -> Arc<beer::Beer> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = generate::GeneratorConfig {
        train: 240,
        heldout: 80,
        annotated: 20,
        ..Default::default()
    };
    generate::write(&cfg, dir.path()).unwrap();
    Arc::new(beer::load_from(dir.path(), maxlen).unwrap())
}

fn config(epochs: usize) -> ExplainConfig {
    let mut c = ExplainConfig::paper(Method::ImleSog, 5, 100);
    c.epochs = epochs;
    c.seed = 11;
    c
}

fn stamp(c: &ExplainConfig) -> RunStamp {
    RunStamp {
        experiment: "table1-test".into(),
        config: serde_json::to_value(c.without_epochs()).unwrap(),
        data: None,
    }
}

#[test]
fn a_two_epoch_tiny_run_lowers_the_validation_mse_and_resumes_exactly() {
    let data = tiny_data(100);
    let c = config(2);
    let mut fresh = Explainer::new(c.clone(), data.clone()).unwrap();
    let before = fresh.evaluate(0).unwrap()["val_mse"];
    let trainer = Trainer::new(stamp(&c), 2, 40, c.seed, c.adam.lr);
    let history = trainer.fit(&mut fresh, Vec::new(), |_| {}).unwrap();
    let after = history[1].eval("val_mse");
    assert!(after < 0.8 * before, "validation MSE {before} -> {after}");
    assert!(history
        .iter()
        .all(|r| (0.0..=1.0).contains(&r.eval("precision"))));

    // Killed after epoch 1, resumed from its checkpoint: the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(stamp(&c), 1, 40, c.seed, c.adam.lr);
    t.checkpoint = Some(dir.path().join("ck.safetensors"));
    let mut first = Explainer::new(c.clone(), data.clone()).unwrap();
    t.fit(&mut first, Vec::new(), |_| {}).unwrap();
    t.epochs = 2;
    let mut resumed = Explainer::new(c.clone(), data).unwrap();
    let h = t.fit(&mut resumed, Vec::new(), |_| {}).unwrap();
    // Wall times differ; the metrics do not.
    let numbers = |h: &[imle_paper::train::EpochRecord]| -> Vec<_> {
        h.iter()
            .map(|r| (r.epoch, r.train.clone(), r.eval.clone()))
            .collect()
    };
    assert_eq!(numbers(&h), numbers(&history));
    assert_eq!(
        resumed.model.1 .1.weight.as_vec(),
        fresh.model.1 .1.weight.as_vec()
    );
}

#[test]
fn every_method_trains_a_step_with_a_finite_loss() {
    let data = tiny_data(100);
    for m in Method::ALL {
        let mut c = ExplainConfig::paper(m, 5, 100);
        c.epochs = 1;
        c.train_subset = Some(40);
        let mut e = Explainer::new(c.clone(), data.clone()).unwrap();
        let t = Trainer::new(stamp(&c), 1, 40, 3, c.adam.lr);
        let h = t.fit(&mut e, Vec::new(), |_| {}).unwrap();
        assert!(h[0].train("mse").is_finite(), "{}", m.name());
    }
    // A selection larger than the sequence is refused.
    let c = ExplainConfig::paper(Method::ImleSog, 101, 100);
    assert!(Explainer::new(c, data).is_err());
}
