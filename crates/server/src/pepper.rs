//! The pepper file: created once with mode 0600, read on every start.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use fal_core::{Pepper, RandomSource};

/// Why the pepper could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PepperError {
    /// Reading or creating the file failed.
    #[error("cannot use the pepper file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file exists but does not hold a pepper.
    #[error("the pepper file {0} is not a pepper (64 hex digits); restore it from backup")]
    Invalid(PathBuf),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] fal_core::random::RandomError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PepperError + '_ {
    move |source| PepperError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the pepper at `path`, or creates it (mode 0600) if there is none.
/// Creation uses `create_new`, so two servers starting together on one data
/// directory end up with the same pepper. Returns whether it was created.
pub fn load_or_create(path: &Path, rng: &dyn RandomSource) -> Result<(Pepper, bool), PepperError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(path))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let pepper = Pepper::generate(rng)?;
            file.write_all(format!("{}\n", pepper.to_hex()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(path))?;
            Ok((pepper, true))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => load(path).map(|p| (p, false)),
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads an existing pepper file.
pub fn load(path: &Path) -> Result<Pepper, PepperError> {
    // A file being written by a concurrent first start may still be empty.
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        if !text.trim().is_empty() {
            return Pepper::from_hex(&text).map_err(|_| PepperError::Invalid(path.to_owned()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(PepperError::Invalid(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fal_core::{KeySecret, OsRandom, SecretHasher};

    #[test]
    fn created_once_with_mode_0600_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pepper");
        let (p1, created) = load_or_create(&path, &OsRandom).unwrap();
        assert!(created);
        let (p2, created) = load_or_create(&path, &OsRandom).unwrap();
        assert!(!created);
        let s = KeySecret::generate(&OsRandom).unwrap();
        assert_eq!(
            SecretHasher::new(&p1).hash(&s),
            SecretHasher::new(&p2).hash(&s)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(load(&path), Err(PepperError::Invalid(_))));
    }
}
