//! MNIST (LeCun, Cortes & Burges): a loader for the four standard IDX files, and a
//! downloader for users who are online.
//!
//! * Files: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//!   `t10k-labels-idx1-ubyte`, each either raw or gzip-compressed (`.gz`; detected by the
//!   gzip magic bytes, not by the name).
//! * Checks: the IDX magic number (`0x00000803` for images, `0x00000801` for labels), the
//!   image size (28 x 28), that the payload has exactly the length the header announces
//!   (a truncated file or trailing bytes are errors), that images and labels agree in
//!   number, and that labels are digits. Every failure is an [`MnistError`] naming the
//!   file; nothing panics on bad input.
//! * Where: [`locate`] looks, in order, in an explicit directory (`--data-dir`), in
//!   `$IMLE_DATA_DIR` and in `datasets/mnist/` (relative to the working directory,
//!   then to this crate's root), and the error lists every place it looked and how to
//!   get the files.
//! * Pixels: kept as bytes; [`MnistSplit::batch_f32`] scales them to `[0, 1]` by `/255`,
//!   **not binarised**, exactly as the official discrete-VAE code (which uses them
//!   directly as the Bernoulli targets of the BCE).
//!
//! [`fetch`] downloads the four `.gz` files from the standard mirrors and verifies the
//! canonical MD5 of each *decompressed* file ([`FILES`]).

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Image side length.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
pub use super::ENV_VAR;

/// The four MNIST files and the canonical MD5 of each decompressed file.
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    (
        "train-labels-idx1-ubyte",
        "a25bea736e30d166cdddb491f175f624",
    ),
    ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
];

/// MNIST in the table of data sets.
pub const DATASET: super::DataSet = super::DataSet {
    name: "mnist",
    description: "MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0): 60,000 + 10,000 28x28 digits",
    used_by: &["fig4"],
    files: &FILES,
    origin: super::Origin::Download(&MIRRORS),
};
/// [`DATASET`] as a `'static` reference (for [`super::DataSet::locate`]).
pub static DATASET_REF: &super::DataSet = &super::DATASETS[0];

/// Standard mirrors of the `.gz` files, tried in order by [`fetch`].
pub const MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Why MNIST could not be found, read or downloaded.
#[derive(Debug, thiserror::Error)]
pub enum MnistError {
    /// No looked-up directory holds the four files.
    #[error(transparent)]
    NotFound(#[from] super::DataError),
    /// A file is missing from a directory given to [`load_from`].
    #[error("{dir}: missing {file} (raw or .gz)")]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// The file.
        file: String,
    },
    /// An I/O error reading a file.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why: the error's `source()`, not repeated in its message (anyhow's `{:#}` prints both).
        source: std::io::Error,
    },
    /// A gzip file that does not decompress (corrupt or truncated).
    #[error("{path} is not a valid gzip file (corrupt or truncated)")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// Why: the error's `source()`, not repeated in its message (anyhow's `{:#}` prints both).
        source: std::io::Error,
    },
    /// The IDX magic number is not the expected one.
    #[error("{path}: bad IDX magic number 0x{got:08x}, expected 0x{expected:08x} ({what})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        what: &'static str,
        /// Expected magic.
        expected: u32,
        /// Magic found.
        got: u32,
    },
    /// The IDX header announces dimensions other than `n x 28 x 28`.
    #[error("{path}: images are {rows}x{cols}, expected 28x28")]
    BadDims {
        /// The file.
        path: PathBuf,
        /// Rows in the header.
        rows: usize,
        /// Columns in the header.
        cols: usize,
    },
    /// The payload is shorter or longer than the header announces.
    #[error("{path}: {what} payload has {got} bytes, the header announces {expected} (truncated or corrupt file)")]
    BadLength {
        /// The file.
        path: PathBuf,
        /// "images", "labels" or "header".
        what: &'static str,
        /// Bytes announced.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// Images and labels disagree in number.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// A label outside 0..=9.
    #[error("{path}: label {value} at index {index} is not a digit")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Index of the label.
        index: usize,
        /// The value.
        value: u8,
    },
    /// A download failed on every mirror, or its checksum did not match.
    #[error("download of {file} failed: {reason}")]
    Download {
        /// The file.
        file: String,
        /// What went wrong on each mirror.
        reason: String,
    },
}

/// One split (train or test): `n` images of 784 bytes and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct MnistSplit {
    /// Row-major pixels, `n * 784` bytes in 0..=255.
    pub images: Vec<u8>,
    /// Labels 0..=9.
    pub labels: Vec<u8>,
}

impl MnistSplit {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i` scaled to `[0, 1]` (`/255`, not binarised).
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.images[i * PIXELS..(i + 1) * PIXELS]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect()
    }

    /// The images `indices`, row-major `(indices.len(), 784)`, scaled to `[0, 1]`.
    pub fn batch_f32(&self, indices: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            out.extend(
                self.images[i * PIXELS..(i + 1) * PIXELS]
                    .iter()
                    .map(|&p| p as f32 / 255.0),
            );
        }
        out
    }

    /// The first `n` images (all if `n >= len`).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            images: self.images[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// The MNIST training (60,000) and test (10,000) sets.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The training split.
    pub train: MnistSplit,
    /// The test split.
    pub test: MnistSplit,
    /// The directory the files were read from.
    pub dir: PathBuf,
    /// MD5 of the four decompressed files: what finished units record of their data.
    pub checksum: String,
}

/// The first looked-up directory that holds all four files (see [`super`]).
pub fn locate(data_dir: Option<&Path>) -> Result<PathBuf, MnistError> {
    Ok(DATASET_REF.locate(data_dir)?)
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    super::DataSet::find_file(dir, name)
}

/// Loads MNIST from the first directory found by [`locate`].
pub fn load(data_dir: Option<&Path>) -> Result<Mnist, MnistError> {
    load_from(&locate(data_dir)?)
}

/// Loads MNIST from `dir`, which must hold the four files (raw or `.gz`).
pub fn load_from(dir: &Path) -> Result<Mnist, MnistError> {
    let mut paths = Vec::with_capacity(4);
    for (name, _) in FILES {
        paths.push(find_file(dir, name).ok_or_else(|| MnistError::Missing {
            dir: dir.to_path_buf(),
            file: name.to_string(),
        })?);
    }
    let bytes = paths
        .iter()
        .map(|p| read_maybe_gz(p))
        .collect::<Result<Vec<_>, _>>()?;
    let train = split_from_bytes((&bytes[0], &paths[0]), (&bytes[1], &paths[1]))?;
    let test = split_from_bytes((&bytes[2], &paths[2]), (&bytes[3], &paths[3]))?;
    Ok(Mnist {
        train,
        test,
        dir: dir.to_path_buf(),
        checksum: super::checksum(&bytes.iter().map(|b| &b[..]).collect::<Vec<_>>()),
    })
}

/// Loads one split from an images file and a labels file (raw or gzip).
pub fn load_split(images: &Path, labels: &Path) -> Result<MnistSplit, MnistError> {
    split_from_bytes(
        (&read_maybe_gz(images)?, images),
        (&read_maybe_gz(labels)?, labels),
    )
}

/// One split from the (decompressed) bytes of its images and labels files.
fn split_from_bytes(
    (images_bytes, images): (&[u8], &Path),
    (labels_bytes, labels): (&[u8], &Path),
) -> Result<MnistSplit, MnistError> {
    let img = parse_images(images_bytes, images)?;
    let lab = parse_labels(labels_bytes, labels)?;
    if img.len() / PIXELS != lab.len() {
        return Err(MnistError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: img.len() / PIXELS,
            n_labels: lab.len(),
        });
    }
    Ok(MnistSplit {
        images: img,
        labels: lab,
    })
}

/// Reads a file, decompressing it if it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, MnistError> {
    let raw = std::fs::read(path).map_err(|source| MnistError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(&raw).map_err(|source| MnistError::Gzip {
            path: path.to_path_buf(),
            source,
        })
    } else {
        Ok(raw)
    }
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn header(bytes: &[u8], path: &Path, what: &'static str, len: usize) -> Result<(), MnistError> {
    if bytes.len() < len {
        return Err(MnistError::BadLength {
            path: path.to_path_buf(),
            what: "header",
            expected: len,
            got: bytes.len(),
        });
    }
    let (magic, expected) = match what {
        "images" => (be_u32(bytes, 0), IMAGES_MAGIC),
        _ => (be_u32(bytes, 0), LABELS_MAGIC),
    };
    if magic != expected {
        return Err(MnistError::BadMagic {
            path: path.to_path_buf(),
            what,
            expected,
            got: magic,
        });
    }
    Ok(())
}

/// Parses a decompressed IDX3 images file: returns `n * 784` pixel bytes.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Vec<u8>, MnistError> {
    header(bytes, path, "images", 16)?;
    let n = be_u32(bytes, 4) as usize;
    let (rows, cols) = (be_u32(bytes, 8) as usize, be_u32(bytes, 12) as usize);
    if (rows, cols) != (SIDE, SIDE) {
        return Err(MnistError::BadDims {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    let expected = n * PIXELS;
    let payload = &bytes[16..];
    if payload.len() != expected {
        return Err(MnistError::BadLength {
            path: path.to_path_buf(),
            what: "images",
            expected,
            got: payload.len(),
        });
    }
    Ok(payload.to_vec())
}

/// Parses a decompressed IDX1 labels file.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, MnistError> {
    header(bytes, path, "labels", 8)?;
    let n = be_u32(bytes, 4) as usize;
    let payload = &bytes[8..];
    if payload.len() != n {
        return Err(MnistError::BadLength {
            path: path.to_path_buf(),
            what: "labels",
            expected: n,
            got: payload.len(),
        });
    }
    if let Some((index, &value)) = payload.iter().enumerate().find(|(_, &v)| v > 9) {
        return Err(MnistError::BadLabel {
            path: path.to_path_buf(),
            index,
            value,
        });
    }
    Ok(payload.to_vec())
}

/// Hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Checks the canonical MD5 of every decompressed file in `dir`; returns `(file, ok)`.
pub fn verify(dir: &Path) -> Result<Vec<(String, bool)>, MnistError> {
    let mut out = Vec::new();
    for (name, md5) in FILES {
        let p = find_file(dir, name).ok_or_else(|| MnistError::Missing {
            dir: dir.to_path_buf(),
            file: name.to_string(),
        })?;
        out.push((name.to_string(), md5_hex(&read_maybe_gz(&p)?) == md5));
    }
    Ok(out)
}

/// Downloads the four `.gz` files into `dir` (created if needed) from [`MIRRORS`],
/// verifying the canonical MD5 of each decompressed file; a file already present with
/// the right checksum is kept. Files are written atomically (temporary file + rename).
/// `log` receives one line per step.
pub fn fetch(dir: &Path, mut log: impl FnMut(&str)) -> Result<(), MnistError> {
    std::fs::create_dir_all(dir).map_err(|source| MnistError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, md5) in FILES {
        if let Some(p) = find_file(dir, name) {
            if read_maybe_gz(&p)
                .map(|b| md5_hex(&b) == md5)
                .unwrap_or(false)
            {
                log(&format!("{name}: present, MD5 ok ({})", p.display()));
                continue;
            }
            log(&format!("{name}: present but invalid, downloading again"));
        }
        let mut reasons = Vec::new();
        let mut done = false;
        for mirror in MIRRORS {
            let url = format!("{mirror}{name}.gz");
            log(&format!("{name}: downloading {url}"));
            match download(&url) {
                Err(e) => reasons.push(format!("{url}: {e}")),
                Ok(gz) => match gunzip(&gz) {
                    Err(e) => reasons.push(format!("{url}: not gzip: {e}")),
                    Ok(raw) if md5_hex(&raw) != md5 => {
                        reasons.push(format!("{url}: MD5 {} != {md5}", md5_hex(&raw)))
                    }
                    Ok(_) => {
                        let target = dir.join(format!("{name}.gz"));
                        crate::output::write_atomic(&target, &gz).map_err(|e| {
                            MnistError::Download {
                                file: name.to_string(),
                                reason: format!("{e:#}"),
                            }
                        })?;
                        log(&format!("{name}: MD5 ok, saved {}", target.display()));
                        done = true;
                        break;
                    }
                },
            }
        }
        if !done {
            return Err(MnistError::Download {
                file: name.to_string(),
                reason: reasons.join("; "),
            });
        }
    }
    Ok(())
}

#[cfg(not(feature = "fetch"))]
fn download(_url: &str) -> Result<Vec<u8>, String> {
    Err("this build has no HTTP client (enable the `fetch` feature)".into())
}

#[cfg(feature = "fetch")]
fn download(url: &str) -> Result<Vec<u8>, String> {
    let resp = ureq::get(url)
        .timeout(std::time::Duration::from_secs(120))
        .call()
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}
