//! The GitHub login kept by the CLI: `$FAL_HOME_DIR/auth.json` (default
//! `~/.fal/auth.json`), mode 0600, replaced atomically (write to a temporary
//! file, then rename), and refreshed under a lock file so two CLI processes
//! at once never corrupt it nor both spend the same refresh token.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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

impl SessionFile {
    /// Reads the file; `None` when there is none or it is unreadable.
    pub fn load(path: &Path) -> Option<SessionFile> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".auth.json.{}.tmp", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(
            serde_json::to_string_pretty(self)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
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
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)?;
        f.lock()?;
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
