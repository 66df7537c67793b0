//! Warcraft terrain maps with their vertex costs and shortest paths (Pogančić et al. 2020),
//! the data of Table 2, in the layout of the published data set — and a generator of
//! look-alike maps ([`generate`]).
//!
//! One folder per grid size (`12x12`, `18x18`, `24x24`, `30x30`), each with, for every
//! split `train`, `val`, `test`, three `.npy` files (raw or `.gz`), read with `npyz`:
//! * `{split}_maps.npy` — `N x 8K x 8K x 3`, `uint8`, channels last;
//! * `{split}_vertex_weights.npy` — `N x K x K` terrain costs, `float16` or `float32`;
//! * `{split}_shortest_paths.npy` — `N x K x K` path indicators (0/1), any float or
//!   integer type of the data set's.
//!
//! Wrong shapes, dtypes, lengths, Fortran order, negative or non-finite costs, paths that
//! are not 0/1, counts that differ between a split's files and missing files are
//! [`WarcraftError`]s naming the file; random and truncated bytes never panic (property
//! tests in `tests/warcraft.rs`).

pub mod generate;

use npyz::{NpyFile, NpyHeader};
use std::path::{Path, PathBuf};

/// The splits, in file-name order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];
/// Pixels per grid cell in the data set's images.
pub const CELL_PX: usize = 8;
/// The grid sizes of the published data set.
pub const PAPER_SIZES: [usize; 4] = [12, 18, 24, 30];
/// What the generator writes beside the nine files: its settings.
pub const GENERATOR_FILE: &str = "GENERATOR.json";

/// The nine files of one grid size.
pub const FILES: [(&str, &str); 9] = [
    ("train_maps.npy", ""),
    ("train_vertex_weights.npy", ""),
    ("train_shortest_paths.npy", ""),
    ("val_maps.npy", ""),
    ("val_vertex_weights.npy", ""),
    ("val_shortest_paths.npy", ""),
    ("test_maps.npy", ""),
    ("test_vertex_weights.npy", ""),
    ("test_shortest_paths.npy", ""),
];

/// The Warcraft data set in the table of data sets (files of one `KxK` folder).
pub const DATASET: super::DataSet = super::DataSet {
    name: "warcraft",
    description: "Warcraft II terrain maps with vertex costs and shortest paths \
                  (Pogančić et al. 2020), or generated look-alike maps; one KxK folder per size",
    used_by: &["table2"],
    files: &FILES,
    origin: super::Origin::Generate("imle-paper data generate warcraft --k 12"),
};

/// Why the maps could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WarcraftError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why: the error's `source()`, not repeated in its message (anyhow's `{:#}` prints both).
        source: std::io::Error,
    },
    /// A file is malformed.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn file_err(path: &Path, why: impl Into<String>) -> WarcraftError {
    WarcraftError::File {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// One split: `n` maps of a `k x k` grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Number of maps.
    pub n: usize,
    /// Grid size K.
    pub k: usize,
    /// Image side in pixels (8 K in the data set).
    pub px: usize,
    /// Images, `n x px x px x 3`, channels last.
    pub maps: Vec<u8>,
    /// Cell costs, `n x k x k`, row-major.
    pub weights: Vec<f32>,
    /// Optimal path indicators (0/1), `n x k x k`.
    pub paths: Vec<f32>,
}

impl Split {
    /// The costs of map `i` (`k * k`, row-major).
    pub fn weights_of(&self, i: usize) -> &[f32] {
        let kk = self.k * self.k;
        &self.weights[i * kk..(i + 1) * kk]
    }

    /// The optimal path of map `i`.
    pub fn path_of(&self, i: usize) -> &[f32] {
        let kk = self.k * self.k;
        &self.paths[i * kk..(i + 1) * kk]
    }

    /// The image of map `i` (`px x px x 3`).
    pub fn map_of(&self, i: usize) -> &[u8] {
        let p = self.px * self.px * 3;
        &self.maps[i * p..(i + 1) * p]
    }

    /// The first `n` maps (all if fewer).
    pub fn take(&self, n: usize) -> Split {
        let n = n.min(self.n);
        let (kk, p) = (self.k * self.k, self.px * self.px * 3);
        Split {
            n,
            k: self.k,
            px: self.px,
            maps: self.maps[..n * p].to_vec(),
            weights: self.weights[..n * kk].to_vec(),
            paths: self.paths[..n * kk].to_vec(),
        }
    }
}

/// The three splits of one grid size.
#[derive(Debug, Clone)]
pub struct Warcraft {
    /// The folder read.
    pub dir: PathBuf,
    /// Grid size K.
    pub k: usize,
    /// Training maps.
    pub train: Split,
    /// Validation maps.
    pub val: Split,
    /// Test maps.
    pub test: Split,
    /// MD5 of every file's bytes (what a run records of its data).
    pub checksum: String,
}

/// A parsed `.npy` array: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, C order.
    pub data: Vec<T>,
}

/// Parses `.npy` bytes after checking that the header is sound (C order, no pickled
/// objects) and that the data are exactly as long as the shape says (so a corrupt header
/// cannot make us allocate more than the file holds).
fn parse_header<'a>(bytes: &'a [u8], path: &Path) -> Result<(NpyHeader, &'a [u8]), WarcraftError> {
    let mut rest = bytes;
    let header = NpyHeader::from_reader(&mut rest)
        .map_err(|e| file_err(path, format!("not a .npy file: {e}")))?;
    let probe = NpyFile::with_header(header.clone(), &b""[..]);
    if probe.uses_pickled_array() {
        return Err(file_err(
            path,
            "holds Python objects (pickled), not numbers",
        ));
    }
    if probe.order() != npyz::Order::C {
        return Err(file_err(path, "is in Fortran order; expected C order"));
    }
    let count = probe
        .shape()
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| file_err(path, "shape too large"))?;
    let item = probe
        .dtype()
        .num_bytes()
        .ok_or_else(|| file_err(path, "dtype of unknown size"))? as u64;
    let need = count
        .checked_mul(item)
        .ok_or_else(|| file_err(path, "shape too large"))?;
    if need != rest.len() as u64 {
        return Err(file_err(
            path,
            format!(
                "shape {:?} of {}-byte items needs {need} bytes of data, the file has {}",
                probe.shape(),
                item,
                rest.len()
            ),
        ));
    }
    Ok((header, rest))
}

fn dtype_name(h: &NpyHeader) -> String {
    NpyFile::with_header(h.clone(), &b""[..]).dtype().descr()
}

fn shape_of(h: &NpyHeader) -> Vec<usize> {
    NpyFile::with_header(h.clone(), &b""[..])
        .shape()
        .iter()
        .map(|&d| d as usize)
        .collect()
}

/// Reads a `uint8` array.
pub fn parse_u8(bytes: &[u8], path: &Path) -> Result<Array<u8>, WarcraftError> {
    let (h, data) = parse_header(bytes, path)?;
    let shape = shape_of(&h);
    let name = dtype_name(&h);
    let values = NpyFile::with_header(h, data)
        .try_data::<u8>()
        .map_err(|_| file_err(path, format!("dtype {name}; expected uint8 ('|u1')")))?
        .collect::<std::io::Result<Vec<u8>>>()
        .map_err(|e| file_err(path, e.to_string()))?;
    Ok(Array {
        shape,
        data: values,
    })
}

/// Reads a numeric array as `f32`: `float16`, `float32`, `float64` or any integer type.
pub fn parse_f32(bytes: &[u8], path: &Path) -> Result<Array<f32>, WarcraftError> {
    let (h, data) = parse_header(bytes, path)?;
    let shape = shape_of(&h);
    let name = dtype_name(&h);
    let bad = |e: std::io::Error| file_err(path, e.to_string());
    let f = NpyFile::with_header(h, data);
    macro_rules! try_as {
        ($f:expr, $($t:ty),*) => {{
            let f = $f;
            $(
                let f = match f.try_data::<$t>() {
                    Ok(r) => {
                        let v = r.collect::<std::io::Result<Vec<$t>>>().map_err(bad)?;
                        #[allow(clippy::unnecessary_cast)]
                        return Ok(Array { shape, data: v.into_iter().map(|x| to_f32(x)).collect() });
                    }
                    Err(f) => f,
                };
            )*
            drop(f);
        }};
    }
    try_as!(f, f32, half::f16, f64, u8, i8, u16, i16, u32, i32, i64, u64);
    Err(file_err(
        path,
        format!("dtype {name}; expected a float or integer type"),
    ))
}

/// Lossy conversion of a stored number to `f32`.
trait ToF32 {
    fn to_f32(self) -> f32;
}
macro_rules! to_f32_as {
    ($($t:ty),*) => { $(impl ToF32 for $t { fn to_f32(self) -> f32 { self as f32 } })* };
}
to_f32_as!(f32, f64, u8, i8, u16, i16, u32, i32, i64, u64);
impl ToF32 for half::f16 {
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}
fn to_f32<T: ToF32>(x: T) -> f32 {
    x.to_f32()
}

fn read(
    dir: &Path,
    file: &str,
    parts: &mut Vec<Vec<u8>>,
) -> Result<(PathBuf, Vec<u8>), WarcraftError> {
    let path = super::DataSet::find_file(dir, file).unwrap_or_else(|| dir.join(file));
    let bytes = super::read_bytes(&path).map_err(|source| WarcraftError::Io {
        path: path.clone(),
        source,
    })?;
    parts.push(bytes.clone());
    Ok((path, bytes))
}

/// Reads split `split` (`train`, `val` or `test`) of a `k x k` folder, checking every
/// shape against the others.
pub fn load_split(
    dir: &Path,
    split: &str,
    k: usize,
    parts: &mut Vec<Vec<u8>>,
) -> Result<Split, WarcraftError> {
    let (mp, mb) = read(dir, &format!("{split}_maps.npy"), parts)?;
    let maps = parse_u8(&mb, &mp)?;
    drop(mb);
    let (n, px) = match maps.shape[..] {
        [n, h, w, 3] if h == w && h >= k && h % k == 0 => (n, h),
        _ => {
            return Err(file_err(
                &mp,
                format!(
                    "shape {:?}; expected N x H x H x 3 with H a multiple of K = {k} (8 K = {} in the data set)",
                    maps.shape,
                    CELL_PX * k
                ),
            ))
        }
    };
    let grid =
        |file: &str, parts: &mut Vec<Vec<u8>>| -> Result<(PathBuf, Vec<f32>), WarcraftError> {
            let (p, b) = read(dir, &format!("{split}_{file}.npy"), parts)?;
            let a = parse_f32(&b, &p)?;
            if a.shape != [n, k, k] {
                return Err(file_err(
                    &p,
                    format!(
                        "shape {:?}; expected [{n}, {k}, {k}] (N from {})",
                        a.shape,
                        mp.display()
                    ),
                ));
            }
            Ok((p, a.data))
        };
    let (wp, weights) = grid("vertex_weights", parts)?;
    if let Some(i) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        return Err(file_err(
            &wp,
            format!(
                "cost {} at map {}, cell {}: costs must be finite and non-negative",
                weights[i],
                i / (k * k),
                i % (k * k)
            ),
        ));
    }
    let (pp, paths) = grid("shortest_paths", parts)?;
    if let Some(i) = paths.iter().position(|&z| z != 0.0 && z != 1.0) {
        return Err(file_err(
            &pp,
            format!(
                "value {} at map {}, cell {}: paths must be 0/1",
                paths[i],
                i / (k * k),
                i % (k * k)
            ),
        ));
    }
    Ok(Split {
        n,
        k,
        px,
        maps: maps.data,
        weights,
        paths,
    })
}

/// Reads the three splits of a `k x k` folder `dir`.
pub fn load_from(dir: &Path, k: usize) -> Result<Warcraft, WarcraftError> {
    let mut parts = Vec::new();
    let [train, val, test] = SPLITS.map(|s| load_split(dir, s, k, &mut parts));
    let (train, val, test) = (train?, val?, test?);
    if train.px != val.px || train.px != test.px {
        return Err(file_err(dir, "the splits' images differ in size"));
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(Warcraft {
        dir: dir.to_path_buf(),
        k,
        train,
        val,
        test,
        checksum: super::checksum(&refs),
    })
}

/// The folder of grid size `k`: in each place [`super::DataSet::search_dirs`] lists,
/// `<place>/KxK/` and then the place itself; the first that holds the nine files.
pub fn locate(data_dir: Option<&Path>, k: usize) -> Result<PathBuf, super::DataError> {
    static REF: &super::DataSet = &DATASET;
    let mut searched = Vec::new();
    for (dir, origin) in REF.search_dirs(data_dir) {
        for (d, o) in [
            (dir.join(format!("{k}x{k}")), format!("{origin}/{k}x{k}")),
            (dir.clone(), origin.clone()),
        ] {
            if !d.is_dir() {
                searched.push((d, format!("{o}: no such directory")));
                continue;
            }
            let missing: Vec<&str> = FILES
                .iter()
                .filter(|(f, _)| super::DataSet::find_file(&d, f).is_none())
                .map(|(f, _)| *f)
                .collect();
            if missing.is_empty() {
                return Ok(d);
            }
            searched.push((d, format!("{o}: missing {}", missing.join(", "))));
        }
    }
    Err(super::DataError::NotFound {
        dataset: REF,
        searched,
        explicit: data_dir.is_some(),
    })
}

/// Where the `k x k` maps are: the files found as [`locate`] says, else (no `data_dir`
/// given) `train` look-alike training maps and the data set's validation and test maps,
/// generated into `datasets/warcraft/KxK/` on first use; `(dir, generator record if
/// generated)`. A named `data_dir` without the files is an error.
pub fn find_or_generate(
    data_dir: Option<&Path>,
    k: usize,
    train: usize,
) -> anyhow::Result<(PathBuf, Option<generate::GeneratorRecord>)> {
    let dir = match locate(data_dir, k) {
        Ok(d) => d,
        Err(e) if data_dir.is_some() => return Err(e.into()),
        Err(_) => {
            let dir = PathBuf::from(format!("datasets/warcraft/{k}x{k}"));
            let cfg = generate::GeneratorConfig {
                train,
                ..generate::GeneratorConfig::new(k)
            };
            println!(
                "no Warcraft maps found for K = {k}; generating {} / {} / {} look-alike maps \
                 (seed {}) into {} (`imle-paper data generate warcraft --k {k}` does this)",
                cfg.train,
                cfg.val,
                cfg.test,
                cfg.seed,
                dir.display()
            );
            generate::write(&cfg, &dir)?;
            dir
        }
    };
    let generated = super::generator_record(&dir.join(GENERATOR_FILE))?;
    Ok((dir, generated))
}

/// Finds and reads the `k x k` data ([`locate`], then [`load_from`]).
pub fn load(data_dir: Option<&Path>, k: usize) -> anyhow::Result<Warcraft> {
    let dir = locate(data_dir, k)?;
    Ok(load_from(&dir, k)?)
}

/// Writes `data` as a C-order `.npy` array of `shape` (`u8` or `f32`).
pub fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    data: &[T],
) -> std::io::Result<()> {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(file)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()
}

/// Writes `split` as its three files in `dir`; returns their paths.
pub fn write_split(dir: &Path, name: &str, split: &Split) -> std::io::Result<Vec<PathBuf>> {
    let (n, k, px) = (split.n, split.k, split.px);
    let paths = [
        dir.join(format!("{name}_maps.npy")),
        dir.join(format!("{name}_vertex_weights.npy")),
        dir.join(format!("{name}_shortest_paths.npy")),
    ];
    write_npy(&paths[0], &[n, px, px, 3], &split.maps)?;
    write_npy(&paths[1], &[n, k, k], &split.weights)?;
    write_npy(&paths[2], &[n, k, k], &split.paths)?;
    Ok(paths.to_vec())
}
