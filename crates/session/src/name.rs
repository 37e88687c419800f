//! Interned names: the few distinct strings that thousands of session
//! bodies repeat (app names, attribute names, authentication context
//! classes), shared instead of copied into every record.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Distinct names the process-wide table keeps. Names come from
/// configuration and from IdPs' assertions, a small vocabulary; past this
/// many (an IdP inventing names), new ones are simply not shared, so the
/// table cannot grow without bound.
pub const MAX_INTERNED: usize = 4_096;

/// A shared, immutable name: one allocation per distinct text, a pointer
/// copy per use. Serialises as the plain string, so a stored or sent
/// session reads exactly as it would with `String`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// The shared copy of `text`, creating it on first use.
    pub fn new(text: &str) -> Self {
        static NAMES: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
        // A panic elsewhere while holding the lock cannot leave the set
        // half-updated (insert is the only write), so poison is ignored.
        let mut names = NAMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = names.get(text) {
            return Self(Arc::clone(name));
        }
        let name: Arc<str> = Arc::from(text);
        if names.len() < MAX_INTERNED {
            names.insert(Arc::clone(&name));
        }
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Name {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_is_one_allocation() {
        let a = Name::new("groups");
        let b = Name::from(String::from("groups"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "groups");
        assert_ne!(Name::new("email"), a);
    }

    #[test]
    fn serialises_as_the_plain_string() {
        let name = Name::new("firstName");
        let json = serde_json::to_string(&name).expect("serialises");
        assert_eq!(
            json,
            serde_json::to_string("firstName").expect("serialises")
        );
        let back: Name = serde_json::from_str(&json).expect("deserialises");
        assert!(Arc::ptr_eq(&back.0, &name.0), "deserialising interns too");
        assert_eq!(format!("{name:?} {name}"), "\"firstName\" firstName");
    }
}
