//! Password sign-in against the directory, shaped so that a caller without
//! the right password learns nothing beyond "that didn't work": every
//! attempt, whoever it names, costs exactly one argon2 verification, and
//! what the account's state is comes out only after it.

use super::password::{self, Verifier};
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
    /// Refused whatever the password, until the lock ends.
    #[error("account is locked out")]
    LockedOut,
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
    /// Verifies `password` for `login` (case-insensitive), with exactly one
    /// argon2 verification on every path, so response time says nothing
    /// about which logins exist or what state they are in:
    ///
    /// - an unknown login is checked against a dummy hash with the default
    ///   parameters;
    /// - a locked-out user (`locked` says so) against their own hash, so it
    ///   takes what a wrong password for them takes; the result is ignored
    ///   and the lock refuses even the right password;
    /// - everyone else against their own hash, and a suspended or
    ///   deprovisioned status is revealed only after the password verified.
    pub fn authenticate(
        &self,
        login: &str,
        password: &str,
        locked: impl FnOnce(&User) -> bool,
        verifier: &mut impl Verifier,
    ) -> Result<&User, AuthFailure> {
        let Some(user) = self.by_login(login) else {
            if let Some(dummy) = password::dummy_hash() {
                // The result is meaningless: only the time spent matters.
                let _ = verifier.verify(dummy, password);
            }
            return Err(AuthFailure::UnknownUser);
        };
        let locked = locked(user);
        let matches = verifier.verify(user.password_hash(), password);
        if locked {
            return Err(AuthFailure::LockedOut);
        }
        if !matches {
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
    use super::super::password::HashMemory;
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

    /// The real verifier, counting its calls and the hashes it was given.
    struct Counting<'a> {
        inner: password::PooledVerifier<'a>,
        hashes: Vec<String>,
    }

    impl Verifier for Counting<'_> {
        fn verify(&mut self, phc: &str, password: &str) -> bool {
            self.hashes.push(phc.to_owned());
            self.inner.verify(phc, password)
        }
    }

    /// `authenticate` as sign-in calls it; `locked` names the locked login.
    fn attempt(
        dir: &Directory,
        login: &str,
        password: &str,
        locked: Option<&str>,
    ) -> (Result<String, AuthFailure>, Vec<String>) {
        let memory = HashMemory::default();
        let mut verifier = Counting {
            inner: memory.verifier(),
            hashes: Vec::new(),
        };
        let outcome = dir
            .authenticate(
                login,
                password,
                |u| Some(u.login()) == locked,
                &mut verifier,
            )
            .map(|u| u.id().to_owned());
        (outcome, verifier.hashes)
    }

    fn ok(dir: &Directory, login: &str, password: &str) -> Result<String, AuthFailure> {
        attempt(dir, login, password, None).0
    }

    #[test]
    fn success_returns_the_user_and_login_ignores_case() {
        assert_eq!(ok(&directory(), "Alice", "alice-pass"), Ok("u1".into()));
    }

    #[test]
    fn bad_password() {
        assert_eq!(
            ok(&directory(), "alice", "Alice-pass"),
            Err(AuthFailure::BadPassword)
        );
    }

    #[test]
    fn unknown_user_still_fails_cleanly() {
        assert_eq!(
            ok(&directory(), "mallory", "whatever"),
            Err(AuthFailure::UnknownUser)
        );
    }

    #[test]
    fn status_is_only_revealed_with_the_right_password() {
        let dir = directory();
        assert_eq!(ok(&dir, "sam", "sam-pass"), Err(AuthFailure::Suspended));
        assert_eq!(ok(&dir, "sam", "wrong"), Err(AuthFailure::BadPassword));
        assert_eq!(
            ok(&dir, "dora", "dora-pass"),
            Err(AuthFailure::Deprovisioned)
        );
        assert_eq!(ok(&dir, "dora", "wrong"), Err(AuthFailure::BadPassword));
    }

    #[test]
    fn a_lock_refuses_even_the_right_password() {
        let dir = directory();
        for password in ["alice-pass", "wrong"] {
            assert_eq!(
                attempt(&dir, "alice", password, Some("alice")).0,
                Err(AuthFailure::LockedOut)
            );
        }
    }

    /// No timing oracle: whatever the case, exactly one argon2
    /// verification runs, unknown logins against the dummy hash (default
    /// parameters, like a real one) and every known user, locked or not,
    /// against their own hash.
    #[test]
    fn every_case_pays_for_exactly_one_verification() {
        let dir = directory();
        let dummy = password::dummy_hash().expect("dummy hash").to_owned();
        let own = |login: &str| {
            dir.by_login(login)
                .expect("user")
                .password_hash()
                .to_owned()
        };
        let cases: [(&str, &str, Option<&str>, AuthFailure, String); 6] = [
            (
                "mallory",
                "x",
                None,
                AuthFailure::UnknownUser,
                dummy.clone(),
            ),
            ("alice", "x", None, AuthFailure::BadPassword, own("alice")),
            (
                "alice",
                "x",
                Some("alice"),
                AuthFailure::LockedOut,
                own("alice"),
            ),
            (
                "alice",
                "alice-pass",
                Some("alice"),
                AuthFailure::LockedOut,
                own("alice"),
            ),
            ("sam", "sam-pass", None, AuthFailure::Suspended, own("sam")),
            (
                "dora",
                "dora-pass",
                None,
                AuthFailure::Deprovisioned,
                own("dora"),
            ),
        ];
        for (login, password, locked, failure, hash) in cases {
            let (outcome, hashes) = attempt(&dir, login, password, locked);
            assert_eq!(outcome, Err(failure), "{login}/{password}");
            assert_eq!(hashes, [hash], "{login}/{password}: one verification");
        }
        let (outcome, hashes) = attempt(&dir, "alice", "alice-pass", None);
        assert_eq!(outcome, Ok("u1".into()));
        assert_eq!(hashes.len(), 1);
        assert!(
            dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{dummy}"
        );
    }
}
