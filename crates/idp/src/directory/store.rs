//! The loaded directory: users indexed by login and by id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::DirectoryError;
use super::password;
use super::user::User;
use super::users_file;

/// All users from one users file. Immutable once loaded: reloading builds a
/// new `Directory` (which callers can swap in atomically).
#[derive(Debug)]
pub struct Directory {
    source: PathBuf,
    users: Vec<User>,
    by_login: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

impl Directory {
    /// Reads and validates the users file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let directory = Self::from_str(&text, path)?;
        // Pay for the dummy hash now rather than on the first unknown login,
        // which would otherwise be measurably slower than a wrong password.
        password::warm_up();
        tracing::info!(
            path = %path.display(),
            users = directory.len(),
            "loaded users file"
        );
        Ok(directory)
    }

    /// Parses users file text; `path_for_messages` only appears in errors.
    pub fn from_str(
        text: &str,
        path_for_messages: impl AsRef<Path>,
    ) -> Result<Self, DirectoryError> {
        let source = path_for_messages.as_ref().to_path_buf();
        let users = users_file::parse(text, &source)?;
        // Validation guarantees ids and logins are unique, so these maps are
        // one-to-one.
        let by_login = users
            .iter()
            .enumerate()
            .map(|(i, u)| (users_file::login_key(u.login()), i))
            .collect();
        let by_id = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id().to_owned(), i))
            .collect();
        Ok(Self {
            source,
            users,
            by_login,
            by_id,
        })
    }

    /// The file this directory was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Finds a user by login, ignoring case.
    pub fn by_login(&self, login: &str) -> Option<&User> {
        self.by_login
            .get(&users_file::login_key(login))
            .and_then(|&i| self.users.get(i))
    }

    /// Finds a user by stable id (exact match).
    pub fn by_id(&self, id: &str) -> Option<&User> {
        self.by_id.get(id).and_then(|&i| self.users.get(i))
    }

    /// All users, in file order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_hashes::cheap_hash;
    use super::*;

    fn two_users() -> Directory {
        let hash = cheap_hash("pw");
        let text = format!(
            "[[user]]\nid = \"00u1\"\nlogin = \"Alice\"\nemail = \"a@example.com\"\n\
             first_name = \"A\"\nlast_name = \"A\"\npassword_hash = \"{hash}\"\n\
             [[user]]\nid = \"00u2\"\nlogin = \"bob\"\nemail = \"b@example.com\"\n\
             first_name = \"B\"\nlast_name = \"B\"\npassword_hash = \"{hash}\"\n"
        );
        Directory::from_str(&text, "test.toml").expect("valid")
    }

    #[test]
    fn lookups_by_login_ignore_case_and_by_id_do_not() {
        let dir = two_users();
        assert_eq!(dir.len(), 2);
        assert_eq!(dir.by_login("alice").map(User::id), Some("00u1"));
        assert_eq!(dir.by_login("ALICE").map(User::id), Some("00u1"));
        assert_eq!(dir.by_login("Bob").map(User::id), Some("00u2"));
        assert!(dir.by_login("carol").is_none());
        assert_eq!(dir.by_id("00u2").map(User::login), Some("bob"));
        assert!(dir.by_id("00U2").is_none());
        assert_eq!(dir.source(), Path::new("test.toml"));
    }

    #[test]
    fn load_reads_a_file_and_reports_missing_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("users.toml");
        let hash = cheap_hash("pw");
        std::fs::write(
            &path,
            format!(
                "[[user]]\nid = \"00u1\"\nlogin = \"alice\"\nemail = \"a@example.com\"\n\
                 first_name = \"A\"\nlast_name = \"A\"\npassword_hash = \"{hash}\"\n"
            ),
        )
        .expect("write");
        let dir = Directory::load(&path).expect("loads");
        assert_eq!(dir.len(), 1);
        assert_eq!(dir.source(), path.as_path());

        let missing = tmp.path().join("nope.toml");
        match Directory::load(&missing) {
            Err(DirectoryError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a read error, got {other:?}"),
        }
    }
}
