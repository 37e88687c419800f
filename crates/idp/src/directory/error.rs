//! Errors from loading the users file. None of them ever carries a
//! password hash or a TOTP secret.

use std::fmt;
use std::path::PathBuf;

use super::password::PasswordHashProblem;
use super::totp::TotpSecretError;

/// Loading the users file failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read users file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file isn't valid TOML or doesn't have the expected shape. Only
    /// the position and parser message are kept: toml's own rendering quotes
    /// the offending line, which could be a `password_hash` or `totp_secret`.
    #[error("cannot parse users file {}{}: {message}", path.display(), line_col(*.line, *.column))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// The file parsed, but some users are invalid; all problems are listed.
    #[error("users file {} has {} problem(s):{}", path.display(), problems.len(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<UserProblem>,
    },
}

fn line_col(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

fn list(problems: &[UserProblem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// One problem with one `[[user]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProblem {
    /// 0-based position of the entry in the file.
    pub index: usize,
    /// The entry's login, when it has one, to help find it.
    pub login: Option<String>,
    pub kind: ProblemKind,
}

impl fmt::Display for UserProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user[{}]", self.index)?;
        if let Some(login) = &self.login {
            write!(f, " (login {login:?})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// What is wrong with a user entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    #[error("`{field}` is missing or empty")]
    EmptyField { field: &'static str },
    #[error("`{field}` must not contain whitespace or control characters")]
    BadCharacters { field: &'static str },
    #[error("`email` {email:?} is not an address of the form local@domain")]
    InvalidEmail { email: String },
    #[error("`groups` contains an empty group name")]
    EmptyGroup,
    #[error("duplicate id {id:?} (already used by user[{first_index}])")]
    DuplicateId { id: String, first_index: usize },
    #[error("duplicate login {login:?}, ignoring case (already used by user[{first_index}])")]
    DuplicateLogin { login: String, first_index: usize },
    #[error("duplicate email {email:?}, ignoring case (already used by user[{first_index}])")]
    DuplicateEmail { email: String, first_index: usize },
    #[error("`password_hash`: {0}")]
    PasswordHash(PasswordHashProblem),
    #[error("`totp_secret`: {0}")]
    TotpSecret(TotpSecretError),
}

/// An administrator's change to a user did not happen; the users file and
/// the directory in force are unchanged.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no user with id {id:?}")]
    UnknownUser { id: String },
    /// The user's status does not allow the operation.
    #[error(transparent)]
    Transition(#[from] super::lifecycle::TransitionError),
    #[error(transparent)]
    Edit(#[from] super::file_edit::FileEditError),
    /// The edited text does not load (which an edit of one status or one
    /// secret should never cause).
    #[error("the edited users file would not load: {0}")]
    Invalid(DirectoryError),
    /// The edited text loads, but the user's entry does not say what the
    /// edit wrote (e.g. the key is set twice in ways the editor missed).
    #[error("the edit of user {id:?} did not take in the users file")]
    NotApplied { id: String },
    #[error(transparent)]
    Write(#[from] crate::atomic_file::AtomicWriteError),
}
