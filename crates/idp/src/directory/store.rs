//! The loaded directory: users indexed by login and by id.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::DirectoryError;
use super::password;
use super::user::User;
use super::users_file;

/// All users from one users file. Immutable once loaded: an edit or a
/// reload builds a new `Directory`, which
/// [`LiveDirectory`](super::LiveDirectory) swaps in whole.
///
/// Users are shared (`Arc`) so a request can keep the one it signs in
/// while the directory it came from is replaced.
pub struct Directory {
    source: PathBuf,
    /// The text the users were parsed from: what an edit changes, so the
    /// operator's comments and layout survive it.
    text: String,
    users: Vec<Arc<User>>,
    by_login: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// Positions in `users`, ordered by id: the order of the Users API's
    /// pages, which a removed user cannot shift.
    id_order: Vec<usize>,
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

    /// Parses users file text; `path` appears in errors and is where
    /// edits are written.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let source = path.as_ref().to_path_buf();
        let users: Vec<Arc<User>> = users_file::parse(text, &source)?
            .into_iter()
            .map(Arc::new)
            .collect();
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
        let mut id_order: Vec<usize> = (0..users.len()).collect();
        id_order.sort_by(|&a, &b| users[a].id().cmp(users[b].id()));
        Ok(Self {
            source,
            text: text.to_owned(),
            users,
            by_login,
            by_id,
            id_order,
        })
    }

    /// The file this directory was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The text it was parsed from.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Finds a user by login, ignoring case.
    pub fn by_login(&self, login: &str) -> Option<&User> {
        self.by_login
            .get(&users_file::login_key(login))
            .and_then(|&i| self.users.get(i))
            .map(|u| &**u)
    }

    /// Finds a user by stable id (exact match).
    pub fn by_id(&self, id: &str) -> Option<&User> {
        self.shared(id).map(|u| &**u)
    }

    /// The user with this id, to keep beyond this directory's life.
    pub fn shared(&self, id: &str) -> Option<&Arc<User>> {
        self.by_id.get(id).and_then(|&i| self.users.get(i))
    }

    /// By id, else by login: what Okta's `/api/v1/users/{id}` accepts.
    pub fn by_id_or_login(&self, key: &str) -> Option<&Arc<User>> {
        self.shared(key).or_else(|| {
            self.by_login
                .get(&users_file::login_key(key))
                .and_then(|&i| self.users.get(i))
        })
    }

    /// All users, in file order.
    pub fn users(&self) -> impl ExactSizeIterator<Item = &User> {
        self.users.iter().map(|u| &**u)
    }

    /// All users, ordered by id.
    pub fn users_by_id(&self) -> impl Iterator<Item = &Arc<User>> {
        self.id_order.iter().filter_map(|&i| self.users.get(i))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The text holds every hash and secret: only the counts are shown.
impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("source", &self.source)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
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
