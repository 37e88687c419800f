//! What an administrator does to a user, with everything that follows
//! from it: the users file changed ([`LiveDirectory`]), the lockout
//! lifted, the user's sessions ended and Universal Logout sent to the
//! apps, the System Log told. The Users API and the admin console both
//! come here; so does a SIGHUP that reloads the users file.
//!
//! Sessions end through the same path as the Sessions API's "clear user
//! sessions" ([`IdpSessions::revoke_user`](crate::session::IdpSessions::revoke_user)):
//! the session-end logger turns each ended session into `user.session.end`
//! and a Universal Logout dispatch. A user with no IdP session left may
//! still have app sessions, so they get one dispatch here.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::directory::{
    Applied, DirectoryError, EditError, Lifecycle, LiveDirectory, User, UserStatus,
};
use crate::session::EndReason;
use crate::syslog::{Actor, Entity};
use crate::web::events::{self, Origin};
use crate::web::Idp;

/// Who asked for a change, for the System Log.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    pub actor: Actor,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A lifecycle operation, done.
#[derive(Debug, Clone)]
pub struct Changed {
    pub applied: Applied,
    /// For [`Lifecycle::Unlock`]: whether a lock was running.
    pub was_locked: bool,
    /// IdP sessions ended (suspend, deactivate).
    pub sessions_ended: usize,
}

/// The change did not happen; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UserAdminError {
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    Load(#[from] DirectoryError),
    /// The blocking task that writes the file panicked or was cancelled.
    #[error("the users file task did not finish")]
    Interrupted,
    /// The file was changed but the lockout store did not answer, so a
    /// lock may still run.
    #[error("lockout store: {0}")]
    Lockout(#[from] portcullis_session::StoreError),
}

/// What a SIGHUP reload of the users file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryReload {
    pub users: usize,
    /// Users who were ACTIVE and are now gone or not ACTIVE: their
    /// sessions ended.
    pub signed_out: usize,
}

impl Idp {
    /// Applies `op` to the user with id `user_id` (see [`Lifecycle`] for
    /// the statuses each allows). Suspend and deactivate end the user's
    /// sessions everywhere; every operation is a System Log event.
    pub async fn change_user(
        &self,
        user_id: &str,
        op: Lifecycle,
        by: &ChangedBy,
    ) -> Result<Changed, UserAdminError> {
        let live = Arc::clone(&self.directory);
        let id = user_id.to_owned();
        // The file is written and synced under the directory's lock: off
        // the async workers.
        let applied = tokio::task::spawn_blocking(move || live.apply(&id, op))
            .await
            .map_err(|_| UserAdminError::Interrupted)??;
        let now = OffsetDateTime::now_utc();
        let was_locked = op == Lifecycle::Unlock && self.lockout.unlock(user_id, now).await?;
        let origin = by.ip.map(|ip| Origin {
            ip,
            user_agent: by.user_agent.as_deref(),
        });
        let event = events::user_lifecycle(
            op,
            by.actor.clone(),
            &applied.after,
            applied.before.status(),
            origin.as_ref(),
        );
        self.emit(match op {
            Lifecycle::Unlock => {
                event.debug("wasLocked", if was_locked { "true" } else { "false" })
            }
            _ => event,
        });
        let sessions_ended = if op.ends_sessions() {
            self.sign_out_everywhere(&applied.after, true).await
        } else {
            0
        };
        tracing::info!(
            user = user_id,
            op = op.as_str(),
            actor = %by.actor.id,
            sessions_ended,
            "user lifecycle operation"
        );
        Ok(Changed {
            applied,
            was_locked,
            sessions_ended,
        })
    }

    /// Reads the users file at `path` again (SIGHUP). On error the running
    /// users stay. Users who were ACTIVE and are now missing or not ACTIVE
    /// are signed out everywhere; status changes are System Log events
    /// with the system as actor.
    pub async fn reload_directory(&self, path: &Path) -> Result<DirectoryReload, UserAdminError> {
        let live: Arc<LiveDirectory> = Arc::clone(&self.directory);
        let path = path.to_owned();
        let reloaded = tokio::task::spawn_blocking(move || live.reload(&path))
            .await
            .map_err(|_| UserAdminError::Interrupted)??;
        let mut signed_out = 0;
        for old in reloaded.before.users() {
            let new = reloaded.after.by_id(old.id());
            if let Some(new) = new.filter(|new| new.status() != old.status()) {
                if let Some(op) = file_transition(old.status(), new.status()) {
                    self.emit(
                        events::user_lifecycle(op, Entity::system(), new, old.status(), None)
                            .debug("source", "users_file"),
                    );
                }
            }
            if old.status() != UserStatus::Active
                || new.is_some_and(|new| new.status() == UserStatus::Active)
            {
                continue;
            }
            signed_out += 1;
            match new {
                Some(new) => self.sign_out_everywhere(new, true).await,
                // Gone from the file: the session-end logger can no longer
                // find their address, so Universal Logout goes from here.
                None => self.sign_out_everywhere(old, false).await,
            };
        }
        Ok(DirectoryReload {
            users: reloaded.after.len(),
            signed_out,
        })
    }

    /// Ends `user`'s IdP sessions and signs them out of every
    /// logout-enabled app; the number of IdP sessions ended. A store that
    /// cannot answer is logged: the sessions left are refused at their
    /// next use anyway, since the user is no longer ACTIVE.
    async fn sign_out_everywhere(&self, user: &User, in_directory: bool) -> usize {
        let why = EndReason::UserSuspended.as_str();
        let ended = match self
            .sessions
            .revoke_user(user.id(), EndReason::UserSuspended)
            .await
        {
            Ok(ended) => ended.len(),
            Err(e) => {
                tracing::error!(user = user.id(), error = %e, "ending a suspended user's sessions failed");
                0
            }
        };
        if ended == 0 || !in_directory {
            self.universal_logout_for(user, why);
        }
        ended
    }

    /// Whether the account is locked out now (the Users API's `LOCKED_OUT`).
    pub async fn is_locked_out(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, portcullis_session::StoreError> {
        Ok(self.lockout.locked_until(user_id, now).await?.is_some())
    }
}

/// The lifecycle operation an edit of the file amounts to, for its event.
fn file_transition(from: UserStatus, to: UserStatus) -> Option<Lifecycle> {
    match (from, to) {
        (UserStatus::Active, UserStatus::Suspended) => Some(Lifecycle::Suspend),
        (UserStatus::Suspended, UserStatus::Active) => Some(Lifecycle::Unsuspend),
        (_, UserStatus::Deprovisioned) => Some(Lifecycle::Deactivate),
        _ => None,
    }
}
