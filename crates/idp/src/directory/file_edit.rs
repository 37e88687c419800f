//! Changes to one user's entry in the users file's text that keep the rest
//! of the file as the operator wrote it: comments, order, spacing, other
//! users byte for byte. (Serialising the parsed users again would drop the
//! comments that document the file.)

use toml_edit::{DocumentMut, Item, TableLike};

use super::user::UserStatus;

/// Why the text could not be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileEditError {
    /// The loader accepted the text but the editor does not: the message
    /// is the editor's, without the quoted line (it may hold a hash).
    #[error("the users file cannot be edited: {0}")]
    Unreadable(String),
    #[error("no [[user]] entry with id {0:?} in the users file")]
    NoEntry(String),
}

/// One change to a user's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryEdit {
    Status(UserStatus),
    RemoveTotp,
}

/// `text` with `edit` applied to the entry whose `id` is `id`. Both forms
/// the loader reads work: `[[user]]` tables and an inline `user = [{…}]`.
pub(super) fn edit_entry(text: &str, id: &str, edit: EntryEdit) -> Result<String, FileEditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| FileEditError::Unreadable(e.message().to_owned()))?;
    let entry =
        find_entry(doc.get_mut("user"), id).ok_or_else(|| FileEditError::NoEntry(id.to_owned()))?;
    match edit {
        EntryEdit::Status(status) => match entry.get_mut("status").and_then(Item::as_value_mut) {
            // Only the value changes: the comment above the key (its
            // decor) and the one after the value stay where they were.
            Some(value) => {
                let decor = value.decor().clone();
                *value = toml_edit::Value::from(status.as_str());
                *value.decor_mut() = decor;
            }
            None => {
                entry.insert("status", toml_edit::value(status.as_str()));
            }
        },
        EntryEdit::RemoveTotp => {
            entry.remove("totp_secret");
        }
    }
    Ok(doc.to_string())
}

fn find_entry<'a>(users: Option<&'a mut Item>, id: &str) -> Option<&'a mut dyn TableLike> {
    let has_id = |entry: &dyn TableLike| entry.get("id").and_then(Item::as_str) == Some(id);
    match users? {
        Item::ArrayOfTables(tables) => tables
            .iter_mut()
            .find(|t| has_id(&**t))
            .map(|t| t as &mut dyn TableLike),
        Item::Value(toml_edit::Value::Array(array)) => array
            .iter_mut()
            .filter_map(toml_edit::Value::as_inline_table_mut)
            .find(|t| has_id(&**t))
            .map(|t| t as &mut dyn TableLike),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# Users.\n\n[[user]]\nid = \"u1\"\n# alice's comment\nlogin = \"alice\"\n\
                        totp_secret = \"ABC\"   # trailing\nstatus = \"ACTIVE\"\n\n\
                        [[user]]\nid = \"u2\"\nlogin = \"bob\"\n# last comment\n";

    #[test]
    fn status_changes_in_place_and_everything_else_stays() {
        let edited =
            edit_entry(FILE, "u1", EntryEdit::Status(UserStatus::Suspended)).expect("edit");
        assert_eq!(
            edited,
            FILE.replace("status = \"ACTIVE\"", "status = \"SUSPENDED\"")
        );
    }

    #[test]
    fn comments_around_the_status_stay() {
        let text = "[[user]]\nid = \"u1\"\n# Suspended on purpose.\nstatus = \"SUSPENDED\"  # see the ticket\n";
        let edited = edit_entry(text, "u1", EntryEdit::Status(UserStatus::Active)).expect("edit");
        assert_eq!(
            edited,
            "[[user]]\nid = \"u1\"\n# Suspended on purpose.\nstatus = \"ACTIVE\"  # see the ticket\n"
        );
    }

    #[test]
    fn a_missing_status_is_added_to_its_own_entry() {
        let edited =
            edit_entry(FILE, "u2", EntryEdit::Status(UserStatus::Deprovisioned)).expect("edit");
        let doc: toml::Table = toml::from_str(&edited).expect("valid TOML");
        let users = doc["user"].as_array().expect("users");
        assert_eq!(users[1]["status"].as_str(), Some("DEPROVISIONED"));
        assert_eq!(users[0]["status"].as_str(), Some("ACTIVE"));
        assert!(edited.starts_with("# Users.\n\n[[user]]\nid = \"u1\"\n# alice's comment\n"));
        assert!(edited.contains("# last comment"), "{edited}");
    }

    #[test]
    fn totp_removal_keeps_the_other_lines() {
        let edited = edit_entry(FILE, "u1", EntryEdit::RemoveTotp).expect("edit");
        assert!(!edited.contains("totp_secret"), "{edited}");
        assert!(
            edited.contains("# alice's comment\nlogin = \"alice\"\n"),
            "{edited}"
        );
        assert!(edited.contains("status = \"ACTIVE\""), "{edited}");
    }

    #[test]
    fn inline_arrays_of_users_are_edited_too() {
        let text = "user = [{ id = \"u1\", login = \"a\" }, { id = \"u2\", login = \"b\", status = \"SUSPENDED\" }]\n";
        let edited = edit_entry(text, "u2", EntryEdit::Status(UserStatus::Active)).expect("edit");
        let doc: toml::Table = toml::from_str(&edited).expect("valid TOML");
        assert_eq!(doc["user"][1]["status"].as_str(), Some("ACTIVE"));
        assert!(doc["user"][0].get("status").is_none());
    }

    #[test]
    fn unknown_ids_are_reported() {
        assert_eq!(
            edit_entry(FILE, "u9", EntryEdit::RemoveTotp),
            Err(FileEditError::NoEntry("u9".into()))
        );
        assert_eq!(
            edit_entry("", "u1", EntryEdit::RemoveTotp),
            Err(FileEditError::NoEntry("u1".into()))
        );
    }
}
