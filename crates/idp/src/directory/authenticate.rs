//! Password sign-in against the directory, shaped so that a caller without
//! the right password learns nothing beyond "that didn't work".

use super::password;
use super::store::Directory;
use super::user::{User, UserStatus};

/// Why a password sign-in failed. For logs and events only: users must see
/// the same [`AuthFailure::PUBLIC_MESSAGE`] whatever the variant, or the
/// sign-in page becomes a way to find valid logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    BadPassword,
    #[error("user is suspended")]
    Suspended,
    #[error("user is deprovisioned")]
    Deprovisioned,
}

impl AuthFailure {
    /// The one message to show for any failure.
    pub const PUBLIC_MESSAGE: &'static str = "Unable to sign in.";
}

impl Directory {
    /// Verifies `password` for `login` (case-insensitive).
    ///
    /// An unknown login still costs one argon2 verification (against a
    /// dummy hash) so response time doesn't reveal which logins exist, and
    /// account status is only revealed after the password verified.
    pub fn authenticate(&self, login: &str, password: &str) -> Result<&User, AuthFailure> {
        let Some(user) = self.by_login(login) else {
            password::dummy_verify(password);
            return Err(AuthFailure::UnknownUser);
        };
        if !password::verify(user.password_hash(), password) {
            return Err(AuthFailure::BadPassword);
        }
        match user.status() {
            UserStatus::Active => Ok(user),
            UserStatus::Suspended => Err(AuthFailure::Suspended),
            UserStatus::Deprovisioned => Err(AuthFailure::Deprovisioned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_hashes::cheap_hash;
    use super::*;

    fn directory() -> Directory {
        let mut text = String::new();
        for (id, login, status) in [
            ("u1", "alice", "ACTIVE"),
            ("u2", "sam", "SUSPENDED"),
            ("u3", "dora", "DEPROVISIONED"),
        ] {
            text += &format!(
                "[[user]]\nid = \"{id}\"\nlogin = \"{login}\"\nemail = \"{login}@example.com\"\n\
                 first_name = \"F\"\nlast_name = \"L\"\nstatus = \"{status}\"\n\
                 password_hash = \"{}\"\n",
                cheap_hash(&format!("{login}-pass"))
            );
        }
        Directory::from_str(&text, "test.toml").expect("valid")
    }

    #[test]
    fn success_returns_the_user_and_login_ignores_case() {
        let dir = directory();
        let user = dir.authenticate("Alice", "alice-pass").expect("signs in");
        assert_eq!(user.id(), "u1");
    }

    #[test]
    fn bad_password() {
        assert_eq!(
            directory()
                .authenticate("alice", "Alice-pass")
                .map(User::id),
            Err(AuthFailure::BadPassword)
        );
    }

    #[test]
    fn unknown_user_still_fails_cleanly() {
        assert_eq!(
            directory()
                .authenticate("mallory", "whatever")
                .map(User::id),
            Err(AuthFailure::UnknownUser)
        );
    }

    #[test]
    fn status_is_only_revealed_with_the_right_password() {
        let dir = directory();
        assert_eq!(
            dir.authenticate("sam", "sam-pass").map(User::id),
            Err(AuthFailure::Suspended)
        );
        assert_eq!(
            dir.authenticate("sam", "wrong").map(User::id),
            Err(AuthFailure::BadPassword)
        );
        assert_eq!(
            dir.authenticate("dora", "dora-pass").map(User::id),
            Err(AuthFailure::Deprovisioned)
        );
        assert_eq!(
            dir.authenticate("dora", "wrong").map(User::id),
            Err(AuthFailure::BadPassword)
        );
    }
}
