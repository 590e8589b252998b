//! The server's own files: the data directory (0700) and the SQLite
//! database (0600), created private from the start like the pepper.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;

/// Creates `dir` (and its parents) if missing, mode 0700. A directory that
/// exists is left as the operator made it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates the empty file `path` with mode 0600 unless it exists, so that
/// SQLite opens it instead of creating it with the process's umask. SQLite
/// gives its `-wal` and `-shm` files the database file's mode.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
