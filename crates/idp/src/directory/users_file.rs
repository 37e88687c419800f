//! The users file (TOML): its on-disk shape, and validation into [`User`]s
//! that reports every problem in one go, so an operator fixes the file once.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::error::{DirectoryError, ProblemKind, UserProblem};
use super::password;
use super::totp::TotpSecret;
use super::user::{User, UserStatus};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default, rename = "user")]
    users: Vec<RawUser>,
}

/// One `[[user]]` table as written. Required strings default to empty so a
/// missing field becomes a validation problem (reported with all the
/// others) rather than a parse error that stops at the first one.
/// No `Debug`: it holds the hash and the TOTP secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    id: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    password_hash: String,
    #[serde(default)]
    totp_secret: Option<String>,
    #[serde(default)]
    status: UserStatus,
    /// Custom profile attributes (`department = "…"`, `roles = ["…"]`),
    /// which SPs receive as `profile.<name>` in their `attributes`.
    #[serde(default)]
    profile: std::collections::BTreeMap<String, ProfileValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProfileValue {
    One(String),
    Many(Vec<String>),
}

/// Parses and validates the users file text. `path` is only used in errors.
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<User>, DirectoryError> {
    let file: UsersFile = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
    let mut problems = Vec::new();
    let mut users = Vec::with_capacity(file.users.len());
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut logins: HashMap<String, usize> = HashMap::new();
    let mut emails: HashMap<String, usize> = HashMap::new();

    for (index, raw) in file.users.into_iter().enumerate() {
        let login = (!raw.login.is_empty()).then(|| raw.login.clone());
        let mut report = |kind| {
            problems.push(UserProblem {
                index,
                login: login.clone(),
                kind,
            })
        };

        for (field, value) in [
            ("id", &raw.id),
            ("login", &raw.login),
            ("email", &raw.email),
            ("first_name", &raw.first_name),
            ("last_name", &raw.last_name),
            ("password_hash", &raw.password_hash),
        ] {
            if value.trim().is_empty() {
                report(ProblemKind::EmptyField { field });
            }
        }
        // ids and logins end up in URLs, logs and SAML NameIDs: keep them
        // free of spaces and invisible characters.
        for (field, value) in [("id", &raw.id), ("login", &raw.login)] {
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                report(ProblemKind::BadCharacters { field });
            }
        }
        if !raw.email.trim().is_empty() && !looks_like_email(&raw.email) {
            report(ProblemKind::InvalidEmail {
                email: raw.email.clone(),
            });
        }
        if raw.groups.iter().any(|g| g.trim().is_empty()) {
            report(ProblemKind::EmptyGroup);
        }

        if !raw.id.is_empty() {
            if let Some(&first_index) = ids.get(&raw.id) {
                report(ProblemKind::DuplicateId {
                    id: raw.id.clone(),
                    first_index,
                });
            } else {
                ids.insert(raw.id.clone(), index);
            }
        }
        if !raw.login.is_empty() {
            let key = login_key(&raw.login);
            if let Some(&first_index) = logins.get(&key) {
                report(ProblemKind::DuplicateLogin {
                    login: raw.login.clone(),
                    first_index,
                });
            } else {
                logins.insert(key, index);
            }
        }
        if !raw.email.is_empty() {
            let key = raw.email.to_lowercase();
            if let Some(&first_index) = emails.get(&key) {
                report(ProblemKind::DuplicateEmail {
                    email: raw.email.clone(),
                    first_index,
                });
            } else {
                emails.insert(key, index);
            }
        }

        if !raw.password_hash.trim().is_empty() {
            if let Err(problem) = password::check_phc(&raw.password_hash) {
                report(ProblemKind::PasswordHash(problem));
            }
        }
        let totp = match raw.totp_secret.as_deref().map(TotpSecret::from_base32) {
            None => None,
            Some(Ok(secret)) => Some(secret),
            Some(Err(problem)) => {
                report(ProblemKind::TotpSecret(problem));
                None
            }
        };

        users.push(User {
            id: raw.id,
            login: raw.login,
            email: raw.email,
            first_name: raw.first_name,
            last_name: raw.last_name,
            groups: raw.groups,
            status: raw.status,
            password_hash: raw.password_hash,
            totp,
            profile: raw
                .profile
                .into_iter()
                .map(|(name, value)| {
                    let values = match value {
                        ProfileValue::One(v) => vec![v],
                        ProfileValue::Many(vs) => vs,
                    };
                    (name, values)
                })
                .collect(),
        });
    }

    if problems.is_empty() {
        Ok(users)
    } else {
        Err(DirectoryError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// How logins are compared: case-insensitively, so "Alice" can't be a
/// second account next to "alice".
pub(super) fn login_key(login: &str) -> String {
    login.to_lowercase()
}

/// Deliberately loose (one `@`, something on both sides, no whitespace):
/// it catches typos like a missing `@`, not every RFC 5322 corner.
fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

fn parse_error(text: &str, path: &Path, error: &toml::de::Error) -> DirectoryError {
    let (line, column) = match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    DirectoryError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message: error.message().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::password::PasswordHashProblem;
    use super::super::test_hashes::cheap_hash;
    use super::super::totp::TotpSecretError;
    use super::*;

    const SECRET_160: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";

    fn user_toml(id: &str, login: &str, email: &str, extra: &str) -> String {
        format!(
            "[[user]]\nid = \"{id}\"\nlogin = \"{login}\"\nemail = \"{email}\"\n\
             first_name = \"F\"\nlast_name = \"L\"\npassword_hash = \"{}\"\n{extra}\n",
            cheap_hash("pw")
        )
    }

    fn problems(text: &str) -> Vec<UserProblem> {
        match parse(text, Path::new("users.toml")) {
            Err(DirectoryError::Invalid { problems, .. }) => problems,
            Err(other) => panic!("expected validation problems, got {other}"),
            Ok(users) => panic!("expected problems, got {} users", users.len()),
        }
    }

    #[test]
    fn valid_file_parses_with_defaults() {
        let text = user_toml("u1", "alice", "a@example.com", "")
            + &user_toml(
                "u2",
                "bob",
                "b@example.com",
                &format!("groups = [\"staff\"]\ntotp_secret = \"{SECRET_160}\"\nstatus = \"DEPROVISIONED\""),
            );
        let users = parse(&text, Path::new("users.toml")).expect("valid");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].status(), UserStatus::Active);
        assert!(users[0].groups().is_empty());
        assert!(!users[0].has_totp());
        assert_eq!(users[1].status(), UserStatus::Deprovisioned);
        assert_eq!(users[1].groups(), ["staff"]);
        assert!(users[1].has_totp());
    }

    #[test]
    fn empty_file_is_an_empty_directory() {
        assert!(parse("", Path::new("users.toml"))
            .expect("valid")
            .is_empty());
    }

    #[test]
    fn all_problems_are_reported_with_index_and_login() {
        let text = [
            user_toml("u1", "alice", "alice@example.com", ""),
            // duplicate id, login differing only by case, duplicate email
            user_toml("u1", "ALICE", "Alice@Example.com", ""),
            // short TOTP secret
            user_toml(
                "u3",
                "carol",
                "carol@example.com",
                "totp_secret = \"JBSWY3DPEHPK3PXP\"",
            ),
            // invalid base32
            user_toml(
                "u4",
                "dave",
                "dave@example.com",
                "totp_secret = \"not base32!\"",
            ),
            // empty required fields, no login at all
            "[[user]]\nid = \"u5\"\nemail = \"\"\nfirst_name = \" \"\nlast_name = \"L\"\n\
             password_hash = \"\"\n"
                .to_string(),
            // wrong hash algorithm, garbage hash
            "[[user]]\nid = \"u6\"\nlogin = \"erin\"\nemail = \"erin@example.com\"\n\
             first_name = \"E\"\nlast_name = \"L\"\n\
             password_hash = \"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$2nHd4DVZ0F6Eb3GDRUtb4Q\"\n\
             [[user]]\nid = \"u7\"\nlogin = \"frank\"\nemail = \"frank@example.com\"\n\
             first_name = \"F\"\nlast_name = \"L\"\npassword_hash = \"hunter2\"\n"
                .to_string(),
            // bad characters, bad email, empty group
            user_toml("u 8", "gina\t", "gina.example.com", "groups = [\"\"]"),
        ]
        .concat();
        let found = problems(&text);
        let expected = vec![
            (
                1,
                Some("ALICE"),
                ProblemKind::DuplicateId {
                    id: "u1".into(),
                    first_index: 0,
                },
            ),
            (
                1,
                Some("ALICE"),
                ProblemKind::DuplicateLogin {
                    login: "ALICE".into(),
                    first_index: 0,
                },
            ),
            (
                1,
                Some("ALICE"),
                ProblemKind::DuplicateEmail {
                    email: "Alice@Example.com".into(),
                    first_index: 0,
                },
            ),
            (
                2,
                Some("carol"),
                ProblemKind::TotpSecret(TotpSecretError::TooShort { bits: 80 }),
            ),
            (
                3,
                Some("dave"),
                ProblemKind::TotpSecret(TotpSecretError::InvalidBase32),
            ),
            (4, None, ProblemKind::EmptyField { field: "login" }),
            (4, None, ProblemKind::EmptyField { field: "email" }),
            (
                4,
                None,
                ProblemKind::EmptyField {
                    field: "first_name",
                },
            ),
            (
                4,
                None,
                ProblemKind::EmptyField {
                    field: "password_hash",
                },
            ),
            (
                5,
                Some("erin"),
                ProblemKind::PasswordHash(PasswordHashProblem::NotArgon2id("argon2i".into())),
            ),
            (
                7,
                Some("gina\t"),
                ProblemKind::BadCharacters { field: "id" },
            ),
            (
                7,
                Some("gina\t"),
                ProblemKind::BadCharacters { field: "login" },
            ),
            (
                7,
                Some("gina\t"),
                ProblemKind::InvalidEmail {
                    email: "gina.example.com".into(),
                },
            ),
            (7, Some("gina\t"), ProblemKind::EmptyGroup),
        ];
        let found_simple: Vec<_> = found
            .iter()
            .filter(|p| p.index != 6)
            .map(|p| (p.index, p.login.as_deref(), p.kind.clone()))
            .collect();
        assert_eq!(found_simple, expected);
        let frank: Vec<_> = found.iter().filter(|p| p.index == 6).collect();
        assert_eq!(frank.len(), 1);
        assert!(matches!(
            frank[0].kind,
            ProblemKind::PasswordHash(PasswordHashProblem::Malformed(_))
        ));
    }

    #[test]
    fn error_message_lists_every_problem_without_secrets() {
        let text = user_toml(
            "u1",
            "alice",
            "a@example.com",
            "totp_secret = \"JBSWY3DPEHPK3PXP\"",
        ) + &user_toml("u1", "bob", "b@example.com", "");
        let err = parse(&text, Path::new("/etc/portcullis/users.toml")).expect_err("invalid");
        let message = err.to_string();
        assert!(message.contains("/etc/portcullis/users.toml"), "{message}");
        assert!(message.contains("2 problem(s)"), "{message}");
        assert!(
            message.contains("user[0] (login \"alice\"): `totp_secret`"),
            "{message}"
        );
        assert!(
            message.contains("user[1] (login \"bob\"): duplicate id \"u1\""),
            "{message}"
        );
        assert!(!message.contains("JBSWY3DPEHPK3PXP"), "{message}");
        assert!(!message.contains("argon2"), "{message}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = user_toml("u1", "alice", "a@example.com", "pasword = \"oops\"");
        match parse(&text, Path::new("users.toml")) {
            Err(DirectoryError::Parse { line, message, .. }) => {
                assert_eq!(line, Some(8));
                assert!(message.contains("pasword"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let top_level = "[[users]]\nid = \"u1\"\n";
        assert!(matches!(
            parse(top_level, Path::new("users.toml")),
            Err(DirectoryError::Parse { .. })
        ));
    }

    #[test]
    fn parse_errors_do_not_quote_the_line() {
        let text = "[[user]]\npassword_hash = \"$argon2id$v=19$secretish\n";
        let err = parse(text, Path::new("users.toml")).expect_err("unterminated string");
        let message = err.to_string();
        assert!(!message.contains("secretish"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn unknown_status_is_rejected() {
        let text = user_toml("u1", "alice", "a@example.com", "status = \"LOCKED\"");
        assert!(matches!(
            parse(&text, Path::new("users.toml")),
            Err(DirectoryError::Parse { .. })
        ));
    }
}
