//! Records at rest: every body written to Redis is sealed (ChaCha20-Poly1305)
//! under the cluster's store key, bound to the Redis key it is written
//! under, so a dump yields neither readable bodies nor a blob that could be
//! moved to another session.
//!
//! Keys form a ring: the first seals, all of them open, so a key can be
//! rotated in by listing the new one first and retired once the records
//! sealed under the old one have expired.

use std::fmt;

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::{hkdf, hmac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::cookie::CookieCodec;
use crate::encoding::{base64url, base64url_decode};
use crate::error::SessionError;
use crate::id::SessionSecret;

/// Format byte of sealed records; a new format gets a new byte.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Below this, key material is a password, not a key.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("store key material must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("no store key given")]
    NoKey,
    /// Damaged, forged, moved from another key, or sealed under a key no
    /// longer in the ring.
    #[error("sealed record does not open")]
    Unopenable,
}

struct RingKey {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
    /// Names index entries, so a dump does not list users by name.
    index: hmac::Key,
    /// Tags cookie values, so a forged one is refused without a lookup.
    cookie: hmac::Key,
}

/// The ring of store keys; the first one seals.
pub struct SealKeys {
    keys: Vec<RingKey>,
}

impl SealKeys {
    /// Keys derived (HKDF-SHA256) from each secret, the first sealing.
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Self, SealError> {
        if secrets.is_empty() {
            return Err(SealError::NoKey);
        }
        let keys = secrets
            .iter()
            .map(|secret| derive(secret.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// A fresh random key: for tests and single-node experiments, where
    /// nothing must open after a restart.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        match Self::from_secrets(&[secret]) {
            Ok(keys) => keys,
            // 32 bytes always derive.
            Err(_) => unreachable!("a 32-byte secret derives a key"),
        }
    }

    /// Seals `plain` for storage under the Redis key `bound_to`.
    pub fn seal(&self, plain: &[u8], bound_to: &str) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        // Sealing with a valid key and a fresh nonce cannot fail.
        if key
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound_to.as_bytes()),
                &mut body,
            )
            .is_err()
        {
            unreachable!("ChaCha20-Poly1305 sealing is infallible for in-range lengths");
        }
        out.extend_from_slice(&body);
        out
    }

    /// A 32-byte key for `purpose`, derived from the ring's first key: a
    /// secret every node of the cluster shares (e.g. the IdP's CSRF key).
    pub fn derived(&self, purpose: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.keys[0].index, format!("derived:{purpose}").as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(tag.as_ref());
        key
    }

    /// The name an index key is filed under: a keyed digest, so Redis
    /// holds no user name or email in clear.
    pub fn index_name(&self, key: &str) -> String {
        name_under(&self.keys[0], key)
    }

    /// Every name `key` may be filed under, one per key in the ring, so
    /// lookups still find sessions filed before a rotation.
    pub fn index_names(&self, key: &str) -> Vec<String> {
        self.keys.iter().map(|k| name_under(k, key)).collect()
    }

    /// Opens what [`seal`](Self::seal) wrote under the same Redis key.
    pub fn open(&self, sealed: &[u8], bound_to: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(SealError::Unopenable);
        }
        let (id, rest) = sealed[1..].split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(SealError::Unopenable)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unopenable)?;
        let mut buffer = ciphertext.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(bound_to.as_bytes()), &mut buffer)
            .map_err(|_| SealError::Unopenable)?;
        Ok(plain.to_vec())
    }
}

/// `secret.tag`: the tag is the HMAC-SHA256 of the secret under the
/// ring's first key, unpadded base64url; any key of the ring verifies, so
/// cookies survive a rotation like records do.
impl CookieCodec for SealKeys {
    fn encode(&self, secret: &SessionSecret) -> String {
        let tag = hmac::sign(&self.keys[0].cookie, secret.expose().as_bytes());
        format!("{}.{}", secret.expose(), base64url(tag.as_ref()))
    }

    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError> {
        let (secret, tag) = value.split_once('.').ok_or(SessionError::Malformed)?;
        let secret = SessionSecret::parse(secret)?;
        let tag = base64url_decode(tag).ok_or(SessionError::Malformed)?;
        let genuine = self
            .keys
            .iter()
            .any(|k| hmac::verify(&k.cookie, secret.expose().as_bytes(), &tag).is_ok());
        if genuine {
            Ok(secret)
        } else {
            Err(SessionError::Malformed)
        }
    }
}

impl fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn name_under(ring: &RingKey, key: &str) -> String {
    let tag = hmac::sign(&ring.index, key.as_bytes());
    crate::encoding::hex(&tag.as_ref()[..16])
}

fn derive(secret: &[u8]) -> Result<RingKey, SealError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SealError::ShortSecret);
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis store seal v1").extract(secret);
    let mut bytes = [0u8; 32];
    let expanded = prk
        .expand(&[b"chacha20-poly1305"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut bytes));
    if expanded.is_err() {
        unreachable!("32 bytes are within HKDF-SHA256's output limit");
    }
    let mut index = [0u8; 32];
    let expanded = prk
        .expand(&[b"index names"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut index));
    if expanded.is_err() {
        unreachable!("32 bytes are within HKDF-SHA256's output limit");
    }
    let mut cookie = [0u8; 32];
    let expanded = prk
        .expand(&[b"cookie tags"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut cookie));
    if expanded.is_err() {
        unreachable!("32 bytes are within HKDF-SHA256's output limit");
    }
    let digest = Sha256::digest(bytes);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    let unbound = match UnboundKey::new(&CHACHA20_POLY1305, &bytes) {
        Ok(key) => key,
        Err(_) => unreachable!("a 32-byte key is ChaCha20-Poly1305's key length"),
    };
    Ok(RingKey {
        id,
        key: LessSafeKey::new(unbound),
        index: hmac::Key::new(hmac::HMAC_SHA256, &index),
        cookie: hmac::Key::new(hmac::HMAC_SHA256, &cookie),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_only_under_their_key_and_binding() {
        let ring = SealKeys::generate();
        let sealed = ring.seal(b"alice's attributes", "s:abcd");
        assert!(!sealed
            .windows(b"alice".len())
            .any(|w| w == b"alice".as_slice()));
        assert_eq!(
            ring.open(&sealed, "s:abcd").as_deref(),
            Ok(&b"alice's attributes"[..])
        );
        assert_eq!(ring.open(&sealed, "s:other"), Err(SealError::Unopenable));
        assert_eq!(
            SealKeys::generate().open(&sealed, "s:abcd"),
            Err(SealError::Unopenable)
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(ring.open(&flipped, "s:abcd"), Err(SealError::Unopenable));
        assert_eq!(
            ring.open(&sealed[..10], "s:abcd"),
            Err(SealError::Unopenable)
        );
    }

    #[test]
    fn a_rotated_ring_opens_what_the_old_key_sealed() {
        let old = [7u8; 32];
        let new = [9u8; 32];
        let before = SealKeys::from_secrets(&[old]).expect("ring");
        let sealed = before.seal(b"body", "k");
        let rotated = SealKeys::from_secrets(&[new, old]).expect("ring");
        assert_eq!(rotated.open(&sealed, "k").as_deref(), Ok(&b"body"[..]));
        let resealed = rotated.seal(b"body", "k");
        assert_eq!(before.open(&resealed, "k"), Err(SealError::Unopenable));
        let secret = SessionSecret::generate();
        let cookie = before.encode(&secret);
        assert_eq!(rotated.decode(&cookie).map(|s| s.hash()), Ok(secret.hash()));
        assert!(
            matches!(
                before.decode(&rotated.encode(&secret)),
                Err(SessionError::Malformed)
            ),
            "the old ring does not know the new key"
        );
        for forged in [
            secret.expose().to_owned(),
            format!("{}.", secret.expose()),
            format!("{}x", cookie),
            format!(
                "{}.{}",
                SessionSecret::generate().expose(),
                cookie.split_once('.').map_or("", |(_, t)| t)
            ),
        ] {
            assert!(
                matches!(before.decode(&forged), Err(SessionError::Malformed)),
                "{forged}"
            );
        }
        let name = before.index_name("email:bob@example.com");
        assert!(!name.contains("bob"), "{name}");
        assert_eq!(rotated.index_names("email:bob@example.com")[1], name);
        assert_ne!(rotated.index_name("email:bob@example.com"), name);
        assert!(matches!(
            SealKeys::from_secrets(&[[1u8; 16]]),
            Err(SealError::ShortSecret)
        ));
        assert!(matches!(
            SealKeys::from_secrets::<[u8; 32]>(&[]),
            Err(SealError::NoKey)
        ));
    }
}
