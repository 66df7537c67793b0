//! The MNIST loader: the real files (skipped with a note when absent), small good and
//! corrupt files made here (raw and gzip), and missing files.

use imle_paper::data::mnist::{self, MnistError};
use std::io::Write;
use std::path::{Path, PathBuf};

fn images_idx(n: u32, rows: u32, cols: u32, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0000_0803u32.to_be_bytes());
    v.extend_from_slice(&n.to_be_bytes());
    v.extend_from_slice(&rows.to_be_bytes());
    v.extend_from_slice(&cols.to_be_bytes());
    v.extend((0..payload).map(|i| (i % 256) as u8));
    v
}

fn labels_idx(n: u32, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0000_0801u32.to_be_bytes());
    v.extend_from_slice(&n.to_be_bytes());
    v.extend((0..payload).map(|i| (i % 10) as u8));
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A directory with a valid tiny MNIST: 3 train and 2 test images; train files gzip,
/// test files raw.
fn tiny_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(
        p.join("train-images-idx3-ubyte.gz"),
        gz(&images_idx(3, 28, 28, 3 * 784)),
    )
    .unwrap();
    std::fs::write(p.join("train-labels-idx1-ubyte.gz"), gz(&labels_idx(3, 3))).unwrap();
    std::fs::write(
        p.join("t10k-images-idx3-ubyte"),
        images_idx(2, 28, 28, 2 * 784),
    )
    .unwrap();
    std::fs::write(p.join("t10k-labels-idx1-ubyte"), labels_idx(2, 2)).unwrap();
    d
}

#[test]
fn loads_good_small_files_raw_and_gzip() {
    let d = tiny_dir();
    let m = mnist::load_from(d.path()).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (3, 2));
    assert_eq!(m.train.labels, vec![0, 1, 2]);
    assert_eq!(m.train.images[..3], [0, 1, 2]);
    // Pixels scaled to [0, 1] by /255, not binarised.
    let x = m.train.batch_f32(&[0]);
    assert_eq!(x.len(), 784);
    assert_eq!(x[1], 1.0 / 255.0);
    assert_eq!(x[255], 1.0);
    // An explicit --data-dir is found first.
    assert_eq!(mnist::locate(Some(d.path())).unwrap(), d.path());
}

fn expect_err(dir: &Path, file: &str, bytes: Vec<u8>) -> MnistError {
    std::fs::remove_file(dir.join(file)).ok();
    std::fs::remove_file(dir.join(format!("{file}.gz"))).ok();
    std::fs::write(dir.join(file), bytes).unwrap();
    let e = mnist::load_from(dir).unwrap_err();
    assert!(
        e.to_string().contains(file),
        "error must name the file: {e}"
    );
    e
}

#[test]
fn corrupt_files_are_clear_errors_naming_the_file() {
    let d = tiny_dir();
    let p = d.path();
    let f = "t10k-images-idx3-ubyte";
    // Bad magic (a labels header in an images file).
    let mut bad = images_idx(2, 28, 28, 2 * 784);
    bad[3] = 0x01;
    assert!(matches!(
        expect_err(p, f, bad),
        MnistError::BadMagic { got: 0x801, .. }
    ));
    // Truncated payload.
    assert!(matches!(
        expect_err(p, f, images_idx(2, 28, 28, 2 * 784 - 5)),
        MnistError::BadLength {
            expected: 1568,
            got: 1563,
            ..
        }
    ));
    // Trailing bytes.
    assert!(matches!(
        expect_err(p, f, images_idx(2, 28, 28, 2 * 784 + 1)),
        MnistError::BadLength { .. }
    ));
    // Truncated header.
    assert!(matches!(
        expect_err(p, f, vec![0, 0, 8]),
        MnistError::BadLength { .. }
    ));
    // Wrong image size.
    assert!(matches!(
        expect_err(p, f, images_idx(2, 32, 32, 2 * 1024)),
        MnistError::BadDims {
            rows: 32,
            cols: 32,
            ..
        }
    ));
    // Images and labels disagree in number.
    let e = expect_err(p, f, images_idx(1, 28, 28, 784));
    assert!(
        matches!(
            e,
            MnistError::CountMismatch {
                n_images: 1,
                n_labels: 2,
                ..
            }
        ),
        "{e}"
    );
    // A label that is not a digit.
    std::fs::write(p.join(f), images_idx(2, 28, 28, 2 * 784)).unwrap();
    let mut lab = labels_idx(2, 2);
    lab[9] = 42;
    assert!(matches!(
        expect_err(p, "t10k-labels-idx1-ubyte", lab),
        MnistError::BadLabel {
            index: 1,
            value: 42,
            ..
        }
    ));
}

#[test]
fn bad_and_truncated_gzip_are_errors() {
    let d = tiny_dir();
    let p = d.path();
    let f = "train-labels-idx1-ubyte.gz";
    // Gzip magic, garbage after it.
    std::fs::write(p.join(f), [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    let e = mnist::load_from(p).unwrap_err();
    assert!(
        matches!(e, MnistError::Gzip { .. }) && e.to_string().contains(f),
        "{e}"
    );
    // A valid gzip stream cut in half.
    let full = gz(&labels_idx(3, 3));
    std::fs::write(p.join(f), &full[..full.len() / 2]).unwrap();
    let e = mnist::load_from(p).unwrap_err();
    assert!(matches!(e, MnistError::Gzip { .. }), "{e}");
}

#[test]
fn missing_files_list_every_place_looked_and_how_to_get_them() {
    let empty = tempfile::tempdir().unwrap();
    let partial = tiny_dir();
    std::fs::remove_file(partial.path().join("t10k-labels-idx1-ubyte")).unwrap();
    // Without --data-dir: $IMLE_DATA_DIR, datasets/mnist; never a folder outside the
    // project that a user does not have.
    let ds = imle_paper::data::dataset("mnist").unwrap();
    let dirs = ds.search_dirs(None);
    assert!(dirs.iter().any(|(d, _)| d.ends_with("datasets/mnist")));
    assert!(!dirs
        .iter()
        .any(|(d, _)| d.to_string_lossy().contains("shared")));
    // An explicit directory is the only place looked in.
    assert_eq!(ds.search_dirs(Some(empty.path())).len(), 1);
    let e = mnist::load_from(partial.path()).unwrap_err();
    assert!(e.to_string().contains("t10k-labels-idx1-ubyte"), "{e}");
    // locate() with an explicit directory that lacks the files is an error (no
    // fall-through to the committed copy), naming it, the files and the fetch command.
    for dir in [empty.path(), partial.path()] {
        let msg = mnist::locate(Some(dir)).unwrap_err().to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.contains("missing"), "{msg}");
        assert!(msg.contains("imle-paper data fetch mnist"), "{msg}");
        assert!(msg.contains("IMLE_DATA_DIR"), "{msg}");
    }
}

/// The committed copy of MNIST (`datasets/mnist/`).
fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")
}

#[test]
fn real_mnist_loads_with_canonical_checksums() {
    let dir = committed_dir();
    let m = mnist::load_from(&dir).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    assert_eq!(m.train.images.len(), 60_000 * 784);
    // First labels of the standard files.
    assert_eq!(m.train.labels[..5], [5, 0, 4, 1, 9]);
    assert_eq!(m.test.labels[..5], [7, 2, 1, 0, 4]);
    for (file, ok) in mnist::verify(&dir).unwrap() {
        assert!(ok, "{file}: MD5 differs from the canonical value");
    }
    let x = m.test.batch_f32(&[0, 1]);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(
        x.iter().any(|&v| v > 0.0 && v < 1.0),
        "grey levels kept (not binarised)"
    );
}
