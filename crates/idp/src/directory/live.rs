//! The directory in force while the IdP runs: read without a lock on every
//! request, replaced whole by an administrator's edit or a SIGHUP reload.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use super::error::{DirectoryError, EditError};
use super::file_edit::{self, EntryEdit};
use super::lifecycle::Lifecycle;
use super::store::Directory;
use super::user::User;
use crate::atomic_file;

/// The current [`Directory`] and the one lock that orders changes to it.
pub struct LiveDirectory {
    current: ArcSwap<Directory>,
    /// Held by every edit and reload from reading the directory in force
    /// to swapping in the next one, so no two start from the same version
    /// and none is lost. Readers never take it. It guards file I/O: call
    /// [`apply`](Self::apply) and [`reload`](Self::reload) off the async
    /// workers (`spawn_blocking`).
    changes: Mutex<()>,
}

/// One lifecycle operation, done.
#[derive(Debug, Clone)]
pub struct Applied {
    pub op: Lifecycle,
    pub before: Arc<User>,
    pub after: Arc<User>,
}

/// The directory before and after a reload.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub before: Arc<Directory>,
    pub after: Arc<Directory>,
}

impl LiveDirectory {
    pub fn new(directory: Directory) -> Self {
        Self {
            current: ArcSwap::from_pointee(directory),
            changes: Mutex::new(()),
        }
    }

    /// The directory in force: one reference count, no copy. Keep it for
    /// the whole request so every lookup sees the same version.
    pub fn current(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Applies `op` to the user with id `user_id`: the users file is
    /// rewritten atomically (the previous version kept as `<file>.bak`)
    /// and then the new directory swapped in. Nothing changes on error.
    /// Blocking (file I/O and fsync).
    pub fn apply(&self, user_id: &str, op: Lifecycle) -> Result<Applied, EditError> {
        let _changing = self.lock();
        let current = self.current.load_full();
        let before = current
            .shared(user_id)
            .cloned()
            .ok_or_else(|| EditError::UnknownUser {
                id: user_id.to_owned(),
            })?;
        let status = op.next_status(before.status())?;
        if !op.edits_file() {
            return Ok(Applied {
                op,
                after: before.clone(),
                before,
            });
        }
        let edit = match op {
            Lifecycle::ResetFactors => EntryEdit::RemoveTotp,
            _ => EntryEdit::Status(status),
        };
        let text = file_edit::edit_entry(current.text(), user_id, edit)?;
        // What is written must be what the loader reads back: parse it
        // with the loader before it replaces anything.
        let next = Directory::from_str(&text, current.source()).map_err(EditError::Invalid)?;
        let after = next
            .shared(user_id)
            .filter(|u| u.status() == status && (edit != EntryEdit::RemoveTotp || !u.has_totp()))
            .cloned()
            .ok_or_else(|| EditError::NotApplied {
                id: user_id.to_owned(),
            })?;
        if text != current.text() {
            warn_if_changed_on_disk(&current);
            atomic_file::replace(current.source(), text.as_bytes())?;
        }
        self.current.store(Arc::new(next));
        tracing::info!(
            user = user_id,
            op = op.as_str(),
            status = status.as_str(),
            file = %current.source().display(),
            "users file updated"
        );
        Ok(Applied { op, before, after })
    }

    /// Reads the users file at `path` again and swaps it in; on error the
    /// running directory stays. Blocking.
    pub fn reload(&self, path: &Path) -> Result<Reloaded, DirectoryError> {
        let _changing = self.lock();
        let after = Arc::new(Directory::load(path)?);
        let before = self.current.swap(after.clone());
        Ok(Reloaded { before, after })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded state is the swapped pointer, always whole.
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for LiveDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveDirectory")
            .field(&*self.current.load())
            .finish()
    }
}

/// An edit starts from the version in force, so edits made to the file
/// since it was loaded (without a SIGHUP) are replaced: say so, once per
/// edit, with where they are kept.
fn warn_if_changed_on_disk(current: &Directory) {
    let path = current.source();
    match std::fs::read_to_string(path) {
        Ok(on_disk) if on_disk == current.text() => {}
        Ok(_) => tracing::warn!(
            file = %path.display(),
            kept_as = %atomic_file::backup_path(path).display(),
            "users file was changed on disk without a reload; an edit replaces those changes"
        ),
        // The write that follows reports a file it cannot use.
        Err(_) => {}
    }
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
