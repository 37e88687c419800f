//! Test-only helper: argon2id hashes with tiny parameters, because default
//! parameters make each verification slow in debug builds.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// An argon2id PHC string for `password` with m=64 KiB, t=1, p=1.
pub(crate) fn cheap_hash(password: &str) -> String {
    let params = Params::new(64, 1, 1, None).expect("valid params");
    let salt = SaltString::encode_b64(b"test-salt-16byte").expect("salt");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}
