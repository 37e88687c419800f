//! Which users a Users API list returns, as Okta's `GET /api/v1/users`
//! chooses them: `q` (a prefix of the login, email, first or last name,
//! ignoring case), `filter` (`status eq "ACTIVE"` and the other equality
//! tests below, joined by `and` / `or`), in id order, `limit` at a time,
//! continuing `after` the last id of the previous page.
//!
//! Ids order the pages because they never change: a user added or removed
//! between two pages neither repeats nor skips anyone else.

use std::sync::Arc;

use super::store::Directory;
use super::user::User;

/// Users per page when `limit` is not given, and at most (Okta's).
pub const MAX_LIMIT: usize = 200;
/// Longest `q`, `after` and `filter` accepted, in bytes.
pub const MAX_Q_LEN: usize = 256;
pub const MAX_FILTER_LEN: usize = 1024;
/// Comparisons in one filter: bounds evaluation per user.
pub const MAX_FILTER_TERMS: usize = 16;

/// A parameter of a list call that cannot be used; `Display` is the
/// summary for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserQueryError {
    #[error("q: at most {MAX_Q_LEN} characters without control characters")]
    Q,
    #[error("limit: a number from 1 to {MAX_LIMIT}")]
    Limit,
    #[error("after: not a cursor from a previous page")]
    After,
    #[error("filter: {0}")]
    Filter(String),
    #[error("{0}: not a parameter of this call")]
    Unknown(String),
}

impl UserQueryError {
    /// The parameter at fault, for `errorCauses`.
    pub fn parameter(&self) -> &str {
        match self {
            Self::Q => "q",
            Self::Limit => "limit",
            Self::After => "after",
            Self::Filter(_) => "filter",
            Self::Unknown(name) => name,
        }
    }
}

/// A list call's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Lower-cased.
    q: Option<String>,
    filter: Option<UserFilter>,
    pub limit: usize,
    after: Option<String>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            q: None,
            filter: None,
            limit: MAX_LIMIT,
            after: None,
        }
    }
}

fn bounded(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(char::is_control)
}

impl UserQuery {
    /// From the query string's pairs. `search` (Okta's other search
    /// language) is not supported and, like every unknown parameter,
    /// refused rather than ignored, so a caller never mistakes an
    /// unfiltered list for a filtered one.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, UserQueryError> {
        let mut query = Self::default();
        for (name, value) in params {
            match name {
                "q" if bounded(value, MAX_Q_LEN) => {
                    query.q = (!value.is_empty()).then(|| value.to_lowercase());
                }
                "q" => return Err(UserQueryError::Q),
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or(UserQueryError::Limit)?;
                }
                "after" if !value.is_empty() && bounded(value, MAX_Q_LEN) => {
                    query.after = Some(value.to_owned());
                }
                "after" => return Err(UserQueryError::After),
                "filter" => query.filter = Some(UserFilter::parse(value)?),
                other => return Err(UserQueryError::Unknown(other.chars().take(64).collect())),
            }
        }
        Ok(query)
    }

    /// One page of `directory`; `status_of` is the status the API shows
    /// (which may say `LOCKED_OUT` where the file says ACTIVE).
    pub fn page<'d>(
        &self,
        directory: &'d Directory,
        status_of: impl Fn(&User) -> &'static str,
    ) -> UserPage<'d> {
        let mut users = Vec::with_capacity(self.limit.min(directory.len()));
        let mut more = false;
        let candidates = directory
            .users_by_id()
            .filter(|u| self.after.as_deref().is_none_or(|after| u.id() > after))
            .filter(|u| self.q.as_deref().is_none_or(|q| matches_q(u, q)))
            .filter(|u| {
                self.filter
                    .as_ref()
                    .is_none_or(|f| f.matches(u, status_of(u)))
            });
        for user in candidates {
            if users.len() == self.limit {
                more = true;
                break;
            }
            users.push(user);
        }
        let next = if more {
            users.last().map(|u| u.id().to_owned())
        } else {
            None
        };
        UserPage { users, next }
    }
}

/// One page of users, and the `after` of the next when there is one.
#[derive(Debug)]
pub struct UserPage<'d> {
    pub users: Vec<&'d Arc<User>>,
    pub next: Option<String>,
}

fn matches_q(user: &User, q: &str) -> bool {
    [
        user.login(),
        user.email(),
        user.first_name(),
        user.last_name(),
    ]
    .iter()
    .any(|field| field.to_lowercase().starts_with(q))
}

/// `clause (and clause)* (or clause (and clause)*)*`, each clause
/// `ATTR eq "value"`: what Okta's `filter` on users mostly carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFilter {
    /// Alternatives, each a conjunction.
    any_of: Vec<Vec<Clause>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    attr: UserAttr,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAttr {
    Status,
    Id,
    Login,
    Email,
    FirstName,
    LastName,
}

impl UserAttr {
    const NAMES: [(UserAttr, &'static str); 6] = [
        (UserAttr::Status, "status"),
        (UserAttr::Id, "id"),
        (UserAttr::Login, "profile.login"),
        (UserAttr::Email, "profile.email"),
        (UserAttr::FirstName, "profile.firstName"),
        (UserAttr::LastName, "profile.lastName"),
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(attr, _)| *attr)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, UserQueryError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(escaped) => value.push(escaped),
                        None => return Err(filter_error("unterminated string")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(filter_error("unterminated string")),
                }
            }
            out.push(Token::Text(value));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(Token::Word(word));
        }
    }
    Ok(out)
}

fn filter_error(message: &str) -> UserQueryError {
    UserQueryError::Filter(message.to_owned())
}

impl UserFilter {
    pub fn parse(text: &str) -> Result<Self, UserQueryError> {
        if !bounded(text, MAX_FILTER_LEN) {
            return Err(filter_error("too long"));
        }
        let supported = || {
            let names: Vec<&str> = UserAttr::NAMES.iter().map(|(_, n)| *n).collect();
            filter_error(&format!(
                "expected ATTRIBUTE eq \"value\" joined by and/or; attributes: {}",
                names.join(", ")
            ))
        };
        let mut any_of = vec![Vec::new()];
        let mut terms = 0;
        let mut tokens = tokens(text)?.into_iter();
        loop {
            let (Some(Token::Word(attr)), Some(Token::Word(op)), Some(Token::Text(value))) =
                (tokens.next(), tokens.next(), tokens.next())
            else {
                return Err(supported());
            };
            let attr = UserAttr::from_name(&attr).ok_or_else(supported)?;
            if !op.eq_ignore_ascii_case("eq") {
                return Err(supported());
            }
            terms += 1;
            if terms > MAX_FILTER_TERMS {
                return Err(filter_error(&format!(
                    "at most {MAX_FILTER_TERMS} comparisons"
                )));
            }
            if let Some(all_of) = any_of.last_mut() {
                all_of.push(Clause { attr, value });
            }
            match tokens.next() {
                None => break,
                Some(Token::Word(join)) if join.eq_ignore_ascii_case("and") => {}
                Some(Token::Word(join)) if join.eq_ignore_ascii_case("or") => {
                    any_of.push(Vec::new());
                }
                Some(_) => return Err(supported()),
            }
        }
        Ok(Self { any_of })
    }

    /// `status` is what the API shows for `user`. Strings compare ignoring
    /// case, as Okta's do, except the id, which is exact.
    fn matches(&self, user: &User, status: &str) -> bool {
        self.any_of.iter().any(|all_of| {
            all_of.iter().all(|clause| {
                let value = clause.value.as_str();
                match clause.attr {
                    UserAttr::Id => user.id() == value,
                    UserAttr::Status => status.eq_ignore_ascii_case(value),
                    UserAttr::Login => user.login().to_lowercase() == value.to_lowercase(),
                    UserAttr::Email => user.email().to_lowercase() == value.to_lowercase(),
                    UserAttr::FirstName => user.first_name().to_lowercase() == value.to_lowercase(),
                    UserAttr::LastName => user.last_name().to_lowercase() == value.to_lowercase(),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_hashes::cheap_hash;
    use super::*;

    fn directory() -> Directory {
        let hash = cheap_hash("pw");
        let mut text = String::new();
        for (id, login, first, last, status) in [
            ("00u3", "carol", "Carol", "Carter", "SUSPENDED"),
            ("00u1", "alice", "Alice", "Anders", "ACTIVE"),
            ("00u2", "bob", "Bob", "Baker", "ACTIVE"),
            ("00u4", "albert", "Albert", "Zed", "DEPROVISIONED"),
        ] {
            text += &format!(
                "[[user]]\nid = \"{id}\"\nlogin = \"{login}\"\nemail = \"{login}@example.com\"\n\
                 first_name = \"{first}\"\nlast_name = \"{last}\"\nstatus = \"{status}\"\n\
                 password_hash = \"{hash}\"\n"
            );
        }
        Directory::from_str(&text, "users.toml").expect("valid")
    }

    fn ids(query: &str) -> (Vec<String>, Option<String>) {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let query = UserQuery::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .expect("valid query");
        let dir = directory();
        let page = query.page(&dir, |u| u.status().as_str());
        (
            page.users.iter().map(|u| u.id().to_owned()).collect(),
            page.next,
        )
    }

    #[test]
    fn everyone_in_id_order() {
        assert_eq!(ids("").0, ["00u1", "00u2", "00u3", "00u4"]);
    }

    #[test]
    fn q_is_a_prefix_of_login_email_or_names_ignoring_case() {
        assert_eq!(ids("q=AL").0, ["00u1", "00u4"]);
        assert_eq!(ids("q=bak").0, ["00u2"]);
        assert_eq!(ids("q=carol%40").0, ["00u3"]);
        assert!(ids("q=lice").0.is_empty(), "a prefix, not a substring");
    }

    #[test]
    fn filters_by_status_and_profile() {
        assert_eq!(ids("filter=status+eq+%22ACTIVE%22").0, ["00u1", "00u2"]);
        assert_eq!(
            ids("filter=status eq \"SUSPENDED\" or profile.login eq \"BOB\"").0,
            ["00u2", "00u3"]
        );
        assert_eq!(
            ids("filter=status eq \"ACTIVE\" and profile.firstName eq \"alice\"").0,
            ["00u1"]
        );
        assert_eq!(ids("filter=id eq \"00u4\"&q=al").0, ["00u4"]);
    }

    #[test]
    fn pages_continue_after_the_last_id() {
        let (first, next) = ids("limit=2");
        assert_eq!(first, ["00u1", "00u2"]);
        assert_eq!(next.as_deref(), Some("00u2"));
        let (second, next) = ids("limit=2&after=00u2");
        assert_eq!(second, ["00u3", "00u4"]);
        assert_eq!(next, None, "no page after the last");
        // A cursor whose user is gone still continues in order.
        assert_eq!(ids("after=00u25").0, ["00u3", "00u4"]);
    }

    #[test]
    fn bad_parameters_are_refused_and_named() {
        for (query, parameter) in [
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=ten", "limit"),
            ("after=", "after"),
            ("search=profile.login", "search"),
            ("filter=status", "filter"),
            ("filter=status gt \"A\"", "filter"),
            ("filter=status eq ACTIVE", "filter"),
            ("filter=status eq \"ACTIVE", "filter"),
            ("filter=password eq \"x\"", "filter"),
            ("filter=status eq \"A\" nor id eq \"b\"", "filter"),
        ] {
            let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let err = UserQuery::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .expect_err(query);
            assert_eq!(err.parameter(), parameter, "{query}: {err}");
        }
        let long = "a".repeat(MAX_Q_LEN + 1);
        assert_eq!(
            UserQuery::from_params([("q", long.as_str())]),
            Err(UserQueryError::Q)
        );
        let many = vec!["id eq \"x\""; MAX_FILTER_TERMS + 1].join(" or ");
        assert!(UserFilter::parse(&many).is_err());
    }
}
