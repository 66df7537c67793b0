//! Runs the `imle-paper` binary on tiny configurations and checks its outputs.

use std::path::Path;
use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imle-paper"))
        .args(args)
        .output()
        .expect("the imle-paper binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "imle-paper {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Parses a CSV file: header and rows; every row has as many fields as the header.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header")
        .split(',')
        .map(String::from)
        .collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    for r in &rows {
        assert_eq!(
            r.len(),
            header.len(),
            "{}: ragged row {r:?}",
            path.display()
        );
    }
    (header, rows)
}

fn column_f64(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<f64> {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    rows.iter()
        .map(|r| {
            r[i].parse::<f64>()
                .unwrap_or_else(|_| panic!("{name}: '{}' is not a number", r[i]))
        })
        .collect()
}

fn check_images(dir: &Path, stem: &str) {
    let png = std::fs::read(dir.join(format!("{stem}.png"))).expect("PNG written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is not a PNG");
    assert!(png.len() > 10_000, "{stem}.png is suspiciously small");
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).expect("SVG written");
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "{stem}.svg is not an SVG"
    );
}

fn no_temporaries(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "temporary file left behind: {name}");
    }
}

#[test]
fn fig2_writes_json_csv_png_svg_and_readme() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let stdout = ok(&["fig2", "--samples", "2000", "--out", out, "--seed", "3"]);
    assert!(stdout.contains("KS"));
    let j = json(&dir.path().join("fig2.json"));
    assert_eq!(j["experiment"], "fig2");
    assert_eq!(j["seed"], 3);
    assert_eq!(j["profile"], "quick");
    assert_eq!(j["config"]["samples"], 2000);
    assert!(j["command"].as_str().unwrap().starts_with("fig2"));
    assert!(j["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    let ks_g = j["summary"]["ks_gumbel_sum"].as_f64().unwrap();
    let ks_s = j["summary"]["ks_sog_sum"].as_f64().unwrap();
    assert!(ks_g > 0.3 && ks_s < 0.06, "KS {ks_g} {ks_s}");
    let (h, rows) = csv(&dir.path().join("fig2.csv"));
    assert_eq!(
        h,
        [
            "panel",
            "bin_left",
            "bin_right",
            "density",
            "gumbel01_pdf_at_centre"
        ]
    );
    assert_eq!(rows.len(), 2 * 60);
    assert!(column_f64(&h, &rows, "density").iter().all(|d| *d >= 0.0));
    check_images(dir.path(), "fig2");
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(readme.contains("Figure 2") && readme.contains("cargo run --release -- fig2"));
    no_temporaries(dir.path());
}

const TINY_FIG3: &[&str] = &[
    "fig3",
    "--reps",
    "2",
    "--steps",
    "5",
    "--sfe-reps",
    "2",
    "--sfe-steps",
    "8",
    "--heat-reps",
    "2",
    "--heat-lr",
    "0.5,1,2",
    "--heat-lambda",
    "1,2,2",
];

#[test]
fn fig3_tiny_run_writes_parseable_outputs_and_is_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        let mut args = TINY_FIG3.to_vec();
        args.extend(["--out", d.path().to_str().unwrap(), "--no-progress"]);
        ok(&args);
    }
    let ja = json(&a.path().join("fig3.json"));
    let jb = json(&b.path().join("fig3.json"));
    assert_eq!(ja["data"], jb["data"], "same seed, different numbers");
    assert_eq!(ja["summary"], jb["summary"]);
    let curves = ja["data"]["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 3);
    assert_eq!(curves[0]["mean_loss"].as_array().unwrap().len(), 5);
    assert_eq!(curves[2]["mean_loss"].as_array().unwrap().len(), 8);
    assert_eq!(ja["data"]["heatmap"].as_array().unwrap().len(), 4);
    let min = ja["data"]["problem"]["min_loss"].as_f64().unwrap();
    let (h, rows) = csv(&a.path().join("fig3_curves.csv"));
    assert_eq!(rows.len(), 5 + 5 + 8);
    for l in column_f64(&h, &rows, "mean_loss") {
        assert!(
            l.is_finite() && l >= min - 1e-9,
            "loss {l} below the optimum {min}"
        );
    }
    let (h, rows) = csv(&a.path().join("fig3_heatmap.csv"));
    assert_eq!(rows.len(), 4);
    assert_eq!(column_f64(&h, &rows, "lr"), [0.5, 1.0, 0.5, 1.0]);
    assert_eq!(column_f64(&h, &rows, "lambda"), [1.0, 1.0, 2.0, 2.0]);
    check_images(a.path(), "fig3");
    no_temporaries(a.path());
}

#[test]
fn fig3_seed_changes_the_numbers() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (d, seed) in [(&a, "0"), (&b, "1")] {
        let mut args = TINY_FIG3.to_vec();
        args.extend([
            "--out",
            d.path().to_str().unwrap(),
            "--seed",
            seed,
            "--no-heatmap",
        ]);
        ok(&args);
    }
    assert_ne!(
        json(&a.path().join("fig3.json"))["data"],
        json(&b.path().join("fig3.json"))["data"]
    );
}

#[test]
fn fidelity_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    ok(&[
        "fidelity",
        "--draws",
        "20",
        "--problems",
        "2",
        "--lambdas",
        "1,2",
        "--taus",
        "1",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let j = json(&dir.path().join("fidelity.json"));
    // 5 estimators × (2 λ + 1 τ) settings.
    assert_eq!(j["data"].as_array().unwrap().len(), 15);
    let (h, rows) = csv(&dir.path().join("fidelity.csv"));
    assert_eq!(rows.len(), 15);
    for c in column_f64(&h, &rows, "cosine") {
        assert!((-1.0..=1.0 + 1e-9).contains(&c));
    }
    check_images(dir.path(), "fidelity");
}

fn fails_with(args: &[&str], needle: &str) {
    let out = cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "imle-paper {args:?} should fail");
    assert!(
        stderr.contains(needle),
        "imle-paper {args:?}: stderr does not mention '{needle}':\n{stderr}"
    );
}

#[test]
fn bad_arguments_give_clear_errors_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    fails_with(&["fig3", "--lr", "-1", "--out", out], "--lr");
    fails_with(
        &["fig3", "--lr", "-1", "--out", out],
        "must be a finite number > 0",
    );
    fails_with(&["fig3", "--reps", "0", "--out", out], "--reps");
    fails_with(&["fig3", "--k", "20", "--out", out], "must not exceed");
    fails_with(
        &["fig3", "--heat-lr", "0.5,1", "--out", out],
        "START,STOP,N",
    );
    fails_with(&["--threads", "0", "fig2", "--out", out], "--threads");
    fails_with(&["fig9"], "unrecognized subcommand");
    fails_with(&["fig2", "--quick", "--full"], "cannot be used with");
    fails_with(&["fig4", "--device", "tpu", "--out", out], "--device");
    fails_with(&["fig3", "--shard", "3/2", "--out", out], "1 <= I <= N");
    fails_with(
        &[
            "fig4",
            "--spec",
            "imle-sog=imle:noise=laplace",
            "--out",
            out,
        ],
        "unknown noise",
    );
    fails_with(
        &[
            "fig4",
            "--methods",
            "gsmt",
            "--spec",
            "imle-sog=ste",
            "--out",
            out,
        ],
        "not among --methods",
    );
    // An explicit --data-dir without MNIST is an error (no fall-through to datasets/).
    let empty = tempfile::tempdir().unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    fails_with(
        &[
            "fig4",
            "--epochs",
            "1",
            "--data-dir",
            empty.path().to_str().unwrap(),
            "--run-dir",
            run_dir.path().to_str().unwrap(),
            "--out",
            out,
        ],
        "not found in the --data-dir given",
    );
    #[cfg(not(feature = "cuda"))]
    fails_with(
        &["fig4", "--device", "cuda", "--out", out],
        "--features cuda",
    );
    // Nothing was written by the failed runs.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `--shard i/N` runs part of the grid and writes no figure; `--report-only` merges the
/// finished parts into the same record as an uninterrupted run.
#[test]
fn fig3_shards_merge_into_the_uninterrupted_record() {
    let whole = tempfile::tempdir().unwrap();
    let merged = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = TINY_FIG3.to_vec();
        args.extend(["--out", out.to_str().unwrap(), "--no-progress"]);
        args.extend(["--run-dir", runs.path().to_str().unwrap()]);
        args.extend(extra);
        ok(&args)
    };
    run(whole.path(), &["--fresh"]);
    std::fs::remove_dir_all(runs.path().join("units")).unwrap();
    let s1 = run(merged.path(), &["--shard", "1/3"]);
    assert!(s1.contains("shard 1/3: computed 3 of the 7 units"), "{s1}");
    assert!(!merged.path().join("fig3.json").exists());
    let partial = run(merged.path(), &["--report-only"]);
    assert!(partial.contains("3 of 7 units finished"), "{partial}");
    run(merged.path(), &["--shard", "2/3"]);
    run(merged.path(), &["--shard", "3/3"]);
    run(merged.path(), &["--report-only"]);
    let (a, b) = (
        json(&whole.path().join("fig3.json")),
        json(&merged.path().join("fig3.json")),
    );
    assert_eq!(a["data"], b["data"]);
    assert_eq!(a["summary"], b["summary"]);
}

#[test]
fn data_list_names_every_data_set_and_where_it_is() {
    let out = ok(&["data", "list"]);
    assert!(out.contains("mnist:"), "{out}");
    assert!(
        out.contains("found in") && out.contains("datasets/mnist"),
        "{out}"
    );
}

/// `imle-paper ... | head`: a reader that closes the pipe ends the run quietly (SIGPIPE,
/// as any Unix tool), never with a panic.
#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_imle-paper"))
        .args(["data", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(13),
            "ended by SIGPIPE: {:?}",
            out.status
        );
    }
}

/// Quick runs write to figures/quick/ by default and never replace a full-protocol record
/// without --overwrite (checked before anything is written).
#[test]
fn quick_runs_never_overwrite_full_records() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_imle-paper"))
            .args(args)
            .current_dir(cwd.path())
            .output()
            .unwrap()
    };
    // Default output folder of the quick profile.
    let out = run(&["fig2", "--samples", "200", "--no-progress"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cwd.path().join("figures/quick/fig2.json").exists());
    assert!(!cwd.path().join("figures/fig2.json").exists());
    // A full-protocol record in figures/: a quick run into it is refused, nothing written.
    let full = cwd.path().join("figures");
    std::fs::create_dir_all(&full).unwrap();
    let record = r#"{"experiment": "fig2", "profile": "full", "readme": "kept"}"#;
    std::fs::write(full.join("fig2.json"), record).unwrap();
    let out = run(&[
        "fig2",
        "--samples",
        "200",
        "--out",
        "figures",
        "--no-progress",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert_eq!(
        std::fs::read_to_string(full.join("fig2.json")).unwrap(),
        record
    );
    // (figures/ holds fig2.json and the quick/ folder of the first run.)
    let entries = || std::fs::read_dir(&full).unwrap().count();
    assert_eq!(entries(), 2);
    let out = run(&["all", "--out", "figures", "--no-progress"]);
    assert!(!out.status.success());
    assert_eq!(entries(), 2);
    // With --overwrite it is replaced.
    let out = run(&[
        "fig2",
        "--samples",
        "200",
        "--out",
        "figures",
        "--overwrite",
        "--no-progress",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json(&full.join("fig2.json"))["profile"] == "quick");
}

/// The official instance of Figure 3 reproduces the official code's L(θ_0) and min L,
/// and is the default of --full only.
#[test]
fn fig3_official_instance_matches_the_official_losses() {
    use imle_paper::experiments::fig3::{problem, Args, Instance};
    use imle_paper::experiments::Profile;
    let full = Args::default().resolve(Profile::Full).unwrap();
    assert_eq!(full.instance, Instance::Official);
    let p = problem(&full, 123).unwrap();
    // The official run (float32): L(θ_0) = 5.2393646, min L = 1.1251508.
    assert!(
        (p.initial_loss - 5.2393646).abs() < 1e-5,
        "{}",
        p.initial_loss
    );
    assert!((p.min_loss - 1.1251508).abs() < 1e-5, "{}", p.min_loss);
    // Independent of the seed; the quick profile draws from it.
    assert_eq!(problem(&full, 7).unwrap(), p);
    let quick = Args::default().resolve(Profile::Quick).unwrap();
    assert_eq!(quick.instance, Instance::Drawn);
    assert_ne!(problem(&quick, 7).unwrap(), problem(&quick, 8).unwrap());
    // Other sizes need a drawn instance.
    let bad = Args {
        n: Some(8),
        instance: Some(Instance::Official),
        ..Args::default()
    };
    assert!(bad
        .resolve(Profile::Quick)
        .unwrap_err()
        .to_string()
        .contains("--instance drawn"));
}

#[test]
fn table1_generates_trains_reports_and_evaluates_a_kept_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s).display().to_string();
    let gen = ok(&[
        "data",
        "generate",
        "beer",
        "--data-dir",
        &d("data"),
        "--train",
        "120",
        "--heldout",
        "40",
        "--annotated",
        "10",
        "--seed",
        "3",
    ]);
    assert!(gen.contains("annotations.json"), "{gen}");
    let args = [
        "table1",
        "--quick",
        "--data-dir",
        &d("data"),
        "--methods",
        "imle-sog,l2x",
        "--epochs",
        "2",
        "--out",
        &d("out"),
        "--run-dir",
        &d("run"),
        "--no-progress",
    ];
    ok(&args);
    let out = dir.path().join("out");
    let rec = json(&out.join("table1.json"));
    assert_eq!(rec["summary"].as_array().unwrap().len(), 2);
    assert_eq!(rec["config"]["generated"]["seed"], 3);
    assert_eq!(rec["config"]["runs"][0]["maxlen"], 150);
    let (h, rows) = csv(&out.join("table1.csv"));
    assert_eq!(rows.len(), 2);
    for v in column_f64(&h, &rows, "precision_x100_mean") {
        assert!((0.0..=100.0).contains(&v), "{v}");
    }
    let (h, rows) = csv(&out.join("table1_runs.csv"));
    assert!(column_f64(&h, &rows, "test_mse")
        .iter()
        .all(|v| v.is_finite()));
    check_images(&out, "table1");
    check_images(&out, "table1_explanations");
    no_temporaries(&out);
    assert!(std::fs::read_to_string(out.join("README.md"))
        .unwrap()
        .contains("Table 1"));
    // Reproducible: the finished units are read back, the same numbers.
    let again = cli(&args);
    assert!(again.status.success());
    assert_eq!(json(&out.join("table1.json"))["summary"], rec["summary"]);
    // The kept model evaluates on any set in the real layout (here one of another seed).
    ok(&[
        "data",
        "generate",
        "beer",
        "--data-dir",
        &d("other"),
        "--train",
        "60",
        "--heldout",
        "30",
        "--annotated",
        "10",
        "--seed",
        "4",
    ]);
    let best = dir.path().join("run/k10/imle-sog/run0/best.safetensors");
    let e = ok(&[
        "table1",
        "--eval",
        &best.display().to_string(),
        "--data-dir",
        &d("other"),
    ]);
    assert!(
        e.contains("test MSE") && e.contains("subset precision") && e.contains("I-MLE SoG"),
        "{e}"
    );
    // Bad inputs: a --data-dir without the files, a file that is not a checkpoint.
    fails_with(
        &["table1", "--data-dir", &d("out")],
        "imle-paper data generate beer",
    );
    fails_with(
        &[
            "table1",
            "--eval",
            &out.join("table1.csv").display().to_string(),
        ],
        "not an imle checkpoint",
    );
}

#[test]
fn table2_generates_trains_reports_and_evaluates_a_kept_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s).display().to_string();
    let generate = |to: &str, seed: &str| {
        ok(&[
            "data",
            "generate",
            "warcraft",
            "--k",
            "6",
            "--data-dir",
            &d(to),
            "--train",
            "60",
            "--val",
            "20",
            "--test",
            "20",
            "--seed",
            seed,
        ])
    };
    let gen = generate("data/6x6", "3");
    assert!(
        gen.contains("train_maps.npy") && gen.contains("GENERATOR.json"),
        "{gen}"
    );
    let args = [
        "table2",
        "--quick",
        "--ks",
        "6",
        "--data-dir",
        &d("data"),
        "--methods",
        "bb,imle-mumu,resnet",
        "--epochs",
        "2",
        "--out",
        &d("out"),
        "--run-dir",
        &d("run"),
        "--no-progress",
    ];
    ok(&args);
    let out = dir.path().join("out");
    let rec = json(&out.join("table2.json"));
    assert_eq!(rec["summary"].as_array().unwrap().len(), 3);
    assert_eq!(rec["summary"][1]["cost_supervised"], true);
    assert_eq!(rec["config"]["generated"][0][1]["config"]["seed"], 3);
    let (h, rows) = csv(&out.join("table2.csv"));
    assert_eq!(rows.len(), 3);
    for v in column_f64(&h, &rows, "accuracy_mean") {
        assert!((0.0..=100.0).contains(&v), "{v}");
    }
    let (h, rows) = csv(&out.join("table2_runs.csv"));
    assert_eq!(rows.len(), 6, "3 runs x 2 epochs");
    assert!(column_f64(&h, &rows, "train_loss")
        .iter()
        .all(|v| v.is_finite()));
    check_images(&out, "table2");
    check_images(&out, "table2_paths");
    no_temporaries(&out);
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("Table 2") && readme.contains("supervised by every cell's true cost"),
        "{readme}"
    );
    // Reproducible: the finished units are read back, the same numbers.
    ok(&args);
    assert_eq!(json(&out.join("table2.json"))["summary"], rec["summary"]);
    // The kept model evaluates on a set generated with another seed.
    generate("other", "4");
    let best = dir.path().join("run/k6/bb/run0/best.safetensors");
    let e = ok(&[
        "table2",
        "--eval",
        &best.display().to_string(),
        "--data-dir",
        &d("other"),
    ]);
    assert!(
        e.contains("test (20 maps): accuracy") && e.contains("BB"),
        "{e}"
    );
    // Bad inputs: no maps in --data-dir, an option of the other data set, a non-checkpoint.
    fails_with(
        &["table2", "--data-dir", &d("out")],
        "imle-paper data generate warcraft",
    );
    fails_with(
        &[
            "data",
            "generate",
            "warcraft",
            "--heldout",
            "3",
            "--data-dir",
            &d("x"),
        ],
        "options of beer",
    );
    fails_with(
        &[
            "table2",
            "--eval",
            &out.join("table2.csv").display().to_string(),
        ],
        "not an imle checkpoint",
    );
    fails_with(
        &["table2", "--methods", "nope", "--data-dir", &d("data")],
        "unknown method 'nope'",
    );
}
