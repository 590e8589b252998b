//! The GitHub login kept by the CLI: `$FAL_HOME_DIR/auth.json` (default
//! `~/.fal/auth.json`), mode 0600, replaced atomically (write to a fresh
//! temporary file with a random name, created exclusively without following
//! links, then rename), and refreshed under a lock file so two CLI processes
//! at once never corrupt it nor both spend the same refresh token.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fal_core::RandomSource;
use serde::{Deserialize, Serialize};

/// What `auth.json` holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionFile {
    /// The server these tokens belong to.
    pub host: String,
    /// Bearer token.
    pub access_token: String,
    /// Rotating refresh token.
    pub refresh_token: String,
    /// Unix seconds when the access token expires.
    pub expires_at: u64,
    /// Who signed in (for `whoami` without a round trip).
    pub nickname: String,
}

impl std::fmt::Debug for SessionFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFile")
            .field("host", &self.host)
            .field("nickname", &self.nickname)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `$FAL_HOME_DIR`, else `~/.fal`.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FAL_HOME_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".fal"))
}

/// The login file's path.
pub fn file_path() -> Option<PathBuf> {
    home_dir().map(|d| d.join("auth.json"))
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Creates `path` for writing: exclusively (never an existing file, never
/// through a symbolic link, dangling or not) and with mode 0600 from the
/// start, so no one else can hold it open or have it point elsewhere.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        // O_EXCL already refuses a link; O_NOFOLLOW says so twice.
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)
}

/// A temporary name beside the login file that no one can guess.
fn temp_name(dir: &Path) -> std::io::Result<PathBuf> {
    let mut random = [0u8; 16];
    fal_core::OsRandom
        .fill(&mut random)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!(".auth.json.{hex}.tmp")))
}

impl SessionFile {
    /// Reads the file; `None` when there is none or it is unreadable.
    pub fn load(path: &Path) -> Option<SessionFile> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the file atomically with mode 0600: into a fresh temporary
    /// file with a random name, created exclusively and never through a
    /// link (see [`create_private`]), then renamed over the old one (a
    /// rename replaces a link at `path`, it does not follow it).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let tmp = temp_name(dir)?;
        let mut f = create_private(&tmp)?;
        let written = f
            .write_all(
                serde_json::to_string_pretty(self)
                    .unwrap_or_default()
                    .as_bytes(),
            )
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// Creates the login file's directory (and its parents) if missing; the
/// directory itself gets mode 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Holds an exclusive lock on `auth.lock` beside the file while alive.
pub struct FileLock(File);

impl FileLock {
    /// Waits for the lock.
    pub fn acquire(path: &Path) -> std::io::Result<FileLock> {
        let lock_path = path.with_file_name("auth.lock");
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
            options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        }
        let f = options.open(lock_path)?;
        f.lock()?;
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn session() -> SessionFile {
        SessionFile {
            host: "http://127.0.0.1:1".into(),
            access_token: "access".into(),
            refresh_token: "refresh".into(),
            expires_at: 1,
            nickname: "alice".into(),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    /// The temporary names an attacker could guess (the old scheme).
    fn guessable(dir: &Path) -> PathBuf {
        dir.join(format!(".auth.json.{}.tmp", std::process::id()))
    }

    #[test]
    fn a_pre_created_temp_file_does_not_make_the_login_file_world_writable() {
        let dir = tempfile::tempdir().unwrap();
        let planted = guessable(dir.path());
        std::fs::write(&planted, "").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        let path = dir.path().join("auth.json");
        session().save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(SessionFile::load(&path).is_some());
        // The planted file got nothing.
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "");
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, guessable(dir.path())).unwrap();
        let path = dir.path().join("auth.json");
        session().save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn the_temp_file_is_created_exclusively_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("existing");
        std::fs::write(&existing, "x").unwrap();
        assert!(create_private(&existing).is_err());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_private(&link).is_err());
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(create_private(&dangling).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let fresh = dir.path().join("fresh");
        drop(create_private(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o600);
    }
}
