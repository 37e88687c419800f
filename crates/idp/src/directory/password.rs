//! Argon2id password hashes: checking PHC strings from the users file, and
//! verifying passwords against them (including the dummy verification that
//! hides whether a login exists).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};

/// The only algorithm we accept: argon2i/argon2d are weaker against
/// side-channel or GPU attacks respectively, and anything else is legacy.
const ARGON2ID: &str = "argon2id";

/// Why a `password_hash` from the users file is unusable. Messages never
/// include the hash itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashProblem {
    #[error("not a valid PHC string ({0})")]
    Malformed(String),
    #[error("algorithm is `{0}`, but only argon2id hashes are accepted")]
    NotArgon2id(String),
    #[error("invalid argon2 parameters ({0})")]
    BadParams(String),
    #[error("the PHC string has no salt or no hash output")]
    Incomplete,
}

/// Checks that `phc` is an argon2id PHC string we could verify against.
/// Any parameters are accepted, so hashes made with other costs keep working.
pub(super) fn check_phc(phc: &str) -> Result<(), PasswordHashProblem> {
    let parsed =
        PasswordHash::new(phc).map_err(|e| PasswordHashProblem::Malformed(e.to_string()))?;
    let algorithm = parsed.algorithm.as_str();
    if algorithm != ARGON2ID {
        return Err(PasswordHashProblem::NotArgon2id(algorithm.to_owned()));
    }
    Params::try_from(&parsed).map_err(|e| PasswordHashProblem::BadParams(e.to_string()))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(PasswordHashProblem::Incomplete);
    }
    Ok(())
}

/// True if `password` matches `phc`. The comparison of hash outputs inside
/// `password-hash` is constant-time; parameters come from the PHC string.
pub(super) fn verify(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // Re-checked here (not only at load) so a non-argon2id hash can never be
    // verified even if a `User` were built some other way.
    if parsed.algorithm.as_str() != ARGON2ID {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash with the default parameters (those `portcullis hash-password`
/// uses), so a dummy verification costs about what a real one does.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            // A fixed salt is fine: nothing real is protected by this hash.
            let salt = SaltString::encode_b64(b"portcullis-dummy").ok()?;
            let hash = Argon2::default()
                .hash_password(b"portcullis-dummy-password", &salt)
                .ok()?;
            Some(hash.to_string())
        })
        .as_deref()
}

/// Computes the dummy hash now, so the first unknown login isn't slower
/// (by one hashing) than later ones.
pub(super) fn warm_up() {
    let _ = dummy_hash();
}

/// Spends one argon2 verification for a login that doesn't exist, so that
/// "unknown user" and "wrong password" take about the same time.
pub(super) fn dummy_verify(password: &str) {
    if let Some(phc) = dummy_hash() {
        // The result is meaningless: only the time spent matters.
        let _ = verify(phc, password);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_hashes::cheap_hash;
    use super::*;

    #[test]
    fn accepts_argon2id_with_any_params() {
        assert_eq!(check_phc(&cheap_hash("pw")), Ok(()));
        let default_params = "$argon2id$v=19$m=19456,t=2,p=1$Tqp7HP9dO3owx8U8QPA5Ow$yQZf6Fh6tlnOrUZQoJi8A7WgigW3v/elH2A+gHVZdyg";
        assert_eq!(check_phc(default_params), Ok(()));
    }

    #[test]
    fn rejects_other_algorithms_and_garbage() {
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$2nHd4DVZ0F6Eb3GDRUtb4Q";
        assert_eq!(
            check_phc(argon2i),
            Err(PasswordHashProblem::NotArgon2id("argon2i".into()))
        );
        assert!(matches!(
            check_phc("$2b$12$abcdefghijklmnopqrstuv"),
            Err(PasswordHashProblem::Malformed(_))
        ));
        assert!(matches!(
            check_phc("plaintext"),
            Err(PasswordHashProblem::Malformed(_))
        ));
        assert_eq!(
            check_phc("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ"),
            Err(PasswordHashProblem::Incomplete)
        );
        assert!(matches!(
            check_phc("$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$2nHd4DVZ0F6Eb3GDRUtb4Q"),
            Err(PasswordHashProblem::BadParams(_))
        ));
    }

    #[test]
    fn verifies_with_params_from_the_phc_string() {
        let phc = cheap_hash("correct horse");
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horse "));
        assert!(!verify("not a hash", "correct horse"));
    }
}
