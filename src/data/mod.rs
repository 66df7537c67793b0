//! Data sets of the reproduction: one table ([`DATASETS`]) of what each experiment
//! needs, where it is looked for, how to get it and how it is checked.
//!
//! * [`mnist`] — MNIST for the discrete VAE of Sec. 6 (Figure 4): IDX loader (raw or
//!   gzip, fully validated) and a checksum-verified downloader. Committed in
//!   `datasets/mnist/`, so a fresh clone works offline.
//!
//! **Where.** [`locate`] looks, in order, in an explicit directory (`--data-dir`: if it
//! lacks a file, that is the error, with no fall-through to the next place),
//! `$IMLE_DATA_DIR/<name>/` then `$IMLE_DATA_DIR` itself, `datasets/<name>/` and
//! `../shared/datasets/<name>/` (relative to the working directory, then to this
//! crate's root). When none holds every file, the error lists each place with what was
//! missing there, and how to get the files (`imle-paper data fetch <name>`).

pub mod mnist;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Environment variable naming a directory of data sets (or of one data set's files).
pub const ENV_VAR: &str = "IMLE_DATA_DIR";

/// How a data set is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Downloaded (`imle-paper data fetch <name>`) from these mirrors, in order.
    Download(&'static [&'static str]),
}

/// One data set: its files, their checksums and where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSet {
    /// Name (`mnist`), also its folder under `datasets/`.
    pub name: &'static str,
    /// What it is and its licence.
    pub description: &'static str,
    /// The experiments that use it.
    pub used_by: &'static [&'static str],
    /// `(file, MD5 of the decompressed file)`; a file may be stored raw or as `.gz`.
    pub files: &'static [(&'static str, &'static str)],
    /// How to get it.
    pub origin: Origin,
}

/// Every data set the experiments use.
pub const DATASETS: &[DataSet] = &[mnist::DATASET];

/// Why a data set could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No data set of that name.
    #[error("unknown data set '{name}'; known: {}", DATASETS.iter().map(|d| d.name).collect::<Vec<_>>().join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// No looked-up directory holds every file.
    #[error("{}", not_found_message(.dataset, .searched, *.explicit))]
    NotFound {
        /// The data set.
        dataset: &'static DataSet,
        /// Every directory looked in, with what was missing there.
        searched: Vec<(PathBuf, String)>,
        /// Whether the first place was an explicit `--data-dir` (no fall-through).
        explicit: bool,
    },
}

/// The data set called `name`.
pub fn dataset(name: &str) -> Result<&'static DataSet, DataError> {
    DATASETS
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| DataError::Unknown { name: name.into() })
}

fn not_found_message(ds: &DataSet, searched: &[(PathBuf, String)], explicit: bool) -> String {
    let mut s = if explicit {
        format!("{} not found in the --data-dir given:\n", ds.name)
    } else {
        format!("{} not found. Looked in:\n", ds.name)
    };
    for (dir, why) in searched {
        let _ = writeln!(s, "  - {} ({why})", dir.display());
    }
    let names: Vec<&str> = ds.files.iter().map(|f| f.0).collect();
    let _ = write!(
        s,
        "Each place needs the files {} (raw or .gz).\n\
         Get them with `imle-paper data fetch {}` (downloads into datasets/{}/ and checks \
         the MD5s), copy them into one of the places above, or point --data-dir / \
         ${ENV_VAR} at a directory that holds them.",
        names.join(", "),
        ds.name,
        ds.name
    );
    s
}

impl DataSet {
    /// The directories [`DataSet::locate`] looks in, in order, each with where it came
    /// from (an explicit `data_dir` is the only one).
    pub fn search_dirs(&self, data_dir: Option<&Path>) -> Vec<(PathBuf, String)> {
        if let Some(d) = data_dir {
            return vec![(d.to_path_buf(), "--data-dir".into())];
        }
        let name = self.name;
        let mut dirs: Vec<(PathBuf, String)> = Vec::new();
        if let Some(d) = std::env::var_os(ENV_VAR).filter(|d| !d.is_empty()) {
            let d = PathBuf::from(d);
            dirs.push((d.join(name), format!("${ENV_VAR}/{name}")));
            dirs.push((d, format!("${ENV_VAR}")));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (base, what) in [(Path::new("."), "."), (root, "crate root")] {
            for rel in [
                format!("datasets/{name}"),
                format!("../shared/datasets/{name}"),
            ] {
                dirs.push((base.join(&rel), format!("{what}/{rel}")));
            }
        }
        // The same directory reached twice (e.g. cwd = crate root) is looked at once.
        let mut seen = Vec::new();
        dirs.retain(|(d, _)| {
            let key = d.canonicalize().unwrap_or_else(|_| d.clone());
            let new = !seen.contains(&key);
            seen.push(key);
            new
        });
        dirs
    }

    /// The path of `file` in `dir`, raw or `.gz`, if it exists.
    pub fn find_file(dir: &Path, file: &str) -> Option<PathBuf> {
        [dir.join(file), dir.join(format!("{file}.gz"))]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// The first looked-up directory that holds every file (see the module docs).
    pub fn locate(&'static self, data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
        let mut searched = Vec::new();
        for (dir, origin) in self.search_dirs(data_dir) {
            let why = if !dir.is_dir() {
                format!("{origin}: no such directory")
            } else {
                let missing: Vec<&str> = self
                    .files
                    .iter()
                    .filter(|(f, _)| Self::find_file(&dir, f).is_none())
                    .map(|(f, _)| *f)
                    .collect();
                if missing.is_empty() {
                    return Ok(dir);
                }
                format!("{origin}: missing {}", missing.join(", "))
            };
            searched.push((dir, why));
        }
        Err(DataError::NotFound {
            dataset: self,
            searched,
            explicit: data_dir.is_some(),
        })
    }
}

/// Hex MD5 of the concatenation of `parts` (the checksum of the data a run used).
pub fn checksum(parts: &[&[u8]]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_dir_lacking_files_is_an_error_not_a_fall_through() {
        let empty = tempfile::tempdir().unwrap();
        let e = mnist::DATASET_REF.locate(Some(empty.path())).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--data-dir given"), "{msg}");
        assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
        assert!(!msg.contains("shared/datasets"), "{msg}");
        assert!(msg.contains("imle-paper data fetch mnist"), "{msg}");
    }

    #[test]
    fn the_default_search_finds_the_committed_copy() {
        let found = mnist::DATASET_REF.locate(None).unwrap();
        assert!(found.ends_with("datasets/mnist"), "{}", found.display());
        assert!(dataset("nope").is_err());
    }

    #[test]
    fn checksum_is_md5_of_the_concatenation() {
        assert_eq!(checksum(&[b"a", b"bc"]), "900150983cd24fb0d6963f7d28e17f72");
    }
}
