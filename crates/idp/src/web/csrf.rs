//! CSRF protection for the sign-in forms: a random per-browser cookie and a
//! form field that is an HMAC of it under a per-process key. A cross-site
//! page can make the browser send the cookie but cannot read it, so it
//! cannot produce the matching field.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const CSRF_COOKIE: &str = "pc_idp_csrf";

pub struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    pub fn new() -> Self {
        Csrf {
            key: rand::random(),
        }
    }

    /// Fields under `key`: every node holding it accepts the others' forms.
    pub fn with_key(key: [u8; 32]) -> Self {
        Csrf { key }
    }

    /// A new value for the CSRF cookie.
    pub fn new_cookie_value() -> String {
        hex(&rand::random::<[u8; 32]>())
    }

    /// The hidden form field that matches `cookie`.
    pub fn field_for(&self, cookie: &str) -> String {
        hex(&self.mac(cookie))
    }

    pub fn verify(&self, cookie: Option<&str>, field: Option<&str>) -> bool {
        let (Some(cookie), Some(field)) = (cookie, field) else {
            return false;
        };
        if cookie.len() != 64 {
            return false;
        }
        let expected = self.field_for(cookie);
        expected.as_bytes().ct_eq(field.as_bytes()).into()
    }

    fn mac(&self, cookie: &str) -> Vec<u8> {
        // HMAC accepts keys of any length; this cannot fail for 32 bytes.
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(cookie.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
}

impl Default for Csrf {
    fn default() -> Self {
        Csrf::new()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_matching_field_verifies() {
        let csrf = Csrf::new();
        let cookie = Csrf::new_cookie_value();
        let field = csrf.field_for(&cookie);
        assert!(csrf.verify(Some(&cookie), Some(&field)));
        assert!(!csrf.verify(Some(&cookie), None));
        assert!(!csrf.verify(None, Some(&field)));
        assert!(!csrf.verify(Some(&Csrf::new_cookie_value()), Some(&field)));
        let other = Csrf::new();
        assert!(
            !other.verify(Some(&cookie), Some(&field)),
            "another key must not verify"
        );
    }
}
