//! A validated directory user and their account status.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::totp::TotpSecret;

/// Lifecycle state of an account, as written in the users file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    /// May sign in.
    #[default]
    Active,
    /// Temporarily barred from signing in (e.g. under investigation).
    Suspended,
    /// Permanently removed; kept in the file so its id is never reused.
    Deprovisioned,
}

impl UserStatus {
    /// The spelling used in the users file and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "ACTIVE",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::Deprovisioned => "DEPROVISIONED",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user from the users file. Only built by the loader, after validation,
/// so every `User` has non-empty fields, an argon2id hash and (if any) a
/// usable TOTP secret.
///
/// Fields are private so the credential material can't leak through a
/// careless `{:?}` or a serializer: `Debug` omits the hash and the secret.
#[derive(Clone)]
pub struct User {
    pub(super) id: String,
    pub(super) login: String,
    pub(super) email: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) groups: Vec<String>,
    pub(super) status: UserStatus,
    pub(super) password_hash: String,
    pub(super) totp: Option<TotpSecret>,
    pub(super) profile: std::collections::BTreeMap<String, Vec<String>>,
}

impl User {
    /// Stable id used in APIs and logs (never changes, unlike the login).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Login name as written in the file (lookups ignore case).
    pub fn login(&self) -> &str {
        &self.login
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    /// Every custom profile attribute with its values, by name.
    pub fn profile_attributes(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.profile.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// A custom profile attribute's values (empty when unset).
    pub fn profile(&self, name: &str) -> &[String] {
        self.profile.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn first_name(&self) -> &str {
        &self.first_name
    }

    pub fn last_name(&self) -> &str {
        &self.last_name
    }

    /// "First Last", for display.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Exact (case-sensitive) group membership, matching how policies name groups.
    pub fn is_in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    pub fn status(&self) -> UserStatus {
        self.status
    }

    /// The user's TOTP secret, if they are enrolled.
    pub fn totp_secret(&self) -> Option<&TotpSecret> {
        self.totp.as_ref()
    }

    pub fn has_totp(&self) -> bool {
        self.totp.is_some()
    }

    pub(super) fn password_hash(&self) -> &str {
        &self.password_hash
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("groups", &self.groups)
            .field("status", &self.status)
            .field("has_totp", &self.totp.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> User {
        User {
            id: "00u1".into(),
            login: "alice".into(),
            email: "alice@example.com".into(),
            first_name: "Alice".into(),
            last_name: "Anders".into(),
            groups: vec!["staff".into()],
            status: UserStatus::Active,
            password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$SECRETHASH".into(),
            totp: Some(TotpSecret::from_bytes(b"12345678901234567890".to_vec()).expect("secret")),
            profile: [("department".to_string(), vec!["Platform".to_string()])]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn profile_attributes_are_read_by_name() {
        let user = sample();
        assert_eq!(user.profile("department"), ["Platform"]);
        assert!(user.profile("missing").is_empty());
    }

    #[test]
    fn debug_hides_credentials() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("argon2"), "{text}");
        assert!(!text.contains("SECRETHASH"), "{text}");
        assert!(!text.contains("1234567890"), "{text}");
        assert!(text.contains("has_totp: true"), "{text}");
    }

    #[test]
    fn group_membership_and_display_name() {
        let user = sample();
        assert!(user.is_in_group("staff"));
        assert!(!user.is_in_group("Staff"));
        assert_eq!(user.display_name(), "Alice Anders");
    }

    #[test]
    fn status_spelling_round_trips() {
        for status in [
            UserStatus::Active,
            UserStatus::Suspended,
            UserStatus::Deprovisioned,
        ] {
            let json = serde_json::to_string(&status).expect("serialize");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }
}
