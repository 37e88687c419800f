//! Replacing a file the IdP edits (the users file today, the console's
//! other files later) so that a reader, a crash or a full disk never sees
//! half of it: the new text goes to `<file>.tmp` beside it and is synced,
//! the old file is kept as `<file>.bak`, then the temporary file is renamed
//! over the old one and the directory synced.
//!
//! Callers serialise their own edits; this module only makes one
//! replacement atomic.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The mode of a file that held no mode to copy: the files the IdP edits
/// hold password hashes and TOTP secrets.
pub const DEFAULT_MODE: u32 = 0o600;
/// Bits never given to a replacement, whatever the old file had: nobody
/// but the owner and their group reads credentials.
const NEVER: u32 = 0o007;

/// Where a replacement stopped. The file at `path` is then unchanged.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("cannot write the temporary file {}: {source}", path.display())]
    Temporary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot keep the previous version as {}: {source}", path.display())]
    Backup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move the new version over {}: {source}", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `<file><suffix>` in the same directory (a rename is only atomic there).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The previous version of `path` after a [`replace`].
pub fn backup_path(path: &Path) -> PathBuf {
    sibling(path, ".bak")
}

/// Replaces `path` with `contents`, keeping the old file as
/// `<file>.bak`. The new file gets the old one's mode without any bit for
/// others ([`DEFAULT_MODE`] when there was no old file). On error the old
/// file is untouched and the temporary file is gone.
pub fn replace(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    let tmp = sibling(path, ".tmp");
    let old_mode = fs::metadata(path).ok().map(|m| m.permissions().mode());
    let mode = old_mode.map_or(DEFAULT_MODE, |m| m & 0o7777 & !NEVER);
    if old_mode.is_some_and(|m| m & NEVER != 0) {
        tracing::warn!(
            file = %path.display(),
            mode = format_args!("{:o}", mode),
            "file was readable by others; its new version is not"
        );
    }
    let result = write_synced(&tmp, contents, mode)
        .map_err(|source| AtomicWriteError::Temporary {
            path: tmp.clone(),
            source,
        })
        .and_then(|()| {
            if old_mode.is_some() {
                keep_previous(path)
            } else {
                Ok(())
            }
        })
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|source| AtomicWriteError::Rename {
                path: path.to_path_buf(),
                source,
            })
        });
    if result.is_err() {
        // Best effort: a leftover is replaced by the next attempt anyway.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // The rename is only durable once the directory entry is; a failure
    // here leaves the new file in place, so it is reported, not undone.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the directory after a rename");
        }
    }
    Ok(())
}

/// Writes and syncs a fresh `tmp` with `mode` (a stale one from a crash is
/// removed first, so its mode cannot carry over).
fn write_synced(tmp: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The umask may have taken bits away from `mode`; the old file's
    // owner and group bits come back exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// `<file>.bak` becomes the current file: a hard link (no copy, the same
/// bytes and mode), made beside it and renamed into place so a previous
/// backup is replaced in one step. A filesystem without hard links gets a
/// copy instead.
fn keep_previous(path: &Path) -> Result<(), AtomicWriteError> {
    let backup = backup_path(path);
    let staging = sibling(path, ".bak.tmp");
    let err = |source| AtomicWriteError::Backup {
        path: backup.clone(),
        source,
    };
    match fs::remove_file(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if fs::hard_link(path, &staging).is_err() {
        fs::copy(path, &staging).map_err(err)?;
    }
    fs::rename(&staging, &backup).map_err(|e| {
        let _ = fs::remove_file(&staging);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_and_keeps_the_previous_version() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.toml");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        replace(&path, b"new").expect("replace");
        assert_eq!(fs::read_to_string(&path).expect("read"), "new");
        assert_eq!(fs::read_to_string(backup_path(&path)).expect("bak"), "old");
        assert_eq!(mode_of(&path), 0o640, "the old mode is kept");
        assert!(!sibling(&path, ".tmp").exists());
        assert!(!sibling(&path, ".bak.tmp").exists());

        replace(&path, b"newer").expect("replace again");
        assert_eq!(fs::read_to_string(backup_path(&path)).expect("bak"), "new");
    }

    #[test]
    fn never_readable_by_others_and_private_when_new() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.toml");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        replace(&path, b"new").expect("replace");
        assert_eq!(mode_of(&path), 0o640);

        let fresh = dir.path().join("fresh.toml");
        replace(&fresh, b"x").expect("create");
        assert_eq!(mode_of(&fresh), DEFAULT_MODE);
        assert!(!backup_path(&fresh).exists(), "nothing to keep");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.toml");
        fs::write(&path, "old").expect("write");
        // A directory where the temporary file goes cannot be replaced by
        // a file (whoever runs the test, root included).
        let tmp = sibling(&path, ".tmp");
        fs::create_dir(&tmp).expect("mkdir");
        fs::write(tmp.join("occupied"), "x").expect("write");
        assert!(matches!(
            replace(&path, b"new"),
            Err(AtomicWriteError::Temporary { .. })
        ));
        assert_eq!(fs::read_to_string(&path).expect("read"), "old");
        fs::remove_dir_all(&tmp).expect("cleanup");

        // Same for the backup: without it, the file is not replaced.
        let staging = sibling(&path, ".bak.tmp");
        fs::create_dir(&staging).expect("mkdir");
        fs::write(staging.join("occupied"), "x").expect("write");
        assert!(matches!(
            replace(&path, b"new"),
            Err(AtomicWriteError::Backup { .. })
        ));
        assert_eq!(fs::read_to_string(&path).expect("read"), "old");
        assert!(!tmp.exists(), "the temporary file is removed");
    }
}
