//! Argon2id password hashes: checking PHC strings from the users file, and
//! verifying passwords against them (including the dummy hash that hides
//! whether a login exists), each verification in working memory that is
//! kept and reused ([`HashMemory`]).

use std::sync::{Mutex, OnceLock, PoisonError};

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

/// One argon2 verification: the seam through which sign-in pays for
/// exactly one per attempt, whatever the outcome (tests count the calls).
pub trait Verifier {
    /// True if `password` matches `phc`.
    fn verify(&mut self, phc: &str, password: &str) -> bool;
}

/// argon2's working memory (m KiB per verification: 19 MiB with the
/// default parameters), kept between verifications instead of allocated
/// for each. Freed 19 MiB blocks stay resident in whichever allocator
/// arena the blocking thread used, so allocating per verification made
/// resident memory grow with the number of threads that ever checked a
/// password; here it is one block per concurrent check, and the caller
/// bounds those.
#[derive(Debug, Default)]
pub struct HashMemory {
    free: Mutex<Vec<Vec<Block>>>,
}

impl HashMemory {
    /// A verifier holding one working memory until it is dropped.
    pub fn verifier(&self) -> PooledVerifier<'_> {
        let blocks = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        PooledVerifier { pool: self, blocks }
    }

    /// Working memories kept for reuse (for tests and diagnostics).
    pub fn kept(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The real [`Verifier`], with working memory from a [`HashMemory`].
pub struct PooledVerifier<'a> {
    pool: &'a HashMemory,
    blocks: Vec<Block>,
}

impl Verifier for PooledVerifier<'_> {
    fn verify(&mut self, phc: &str, password: &str) -> bool {
        verify_in(phc, password, &mut self.blocks)
    }
}

impl Drop for PooledVerifier<'_> {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        if !blocks.is_empty() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(blocks);
        }
    }
}

/// True if `password` matches `phc`, computed in `blocks` (grown to the
/// hash's memory cost when smaller). What `argon2`'s own
/// `verify_password` does, with the memory handed in: parameters, version
/// and output length come from the PHC string, and the outputs are
/// compared in constant time (`Output`'s `PartialEq`).
pub(super) fn verify_in(phc: &str, password: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // Re-checked here (not only at load) so a non-argon2id hash can never be
    // verified even if a `User` were built some other way.
    if parsed.algorithm.as_str() != ARGON2ID {
        return false;
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut blocks[..])
            .map_err(|_| argon2::password_hash::Error::Password)
    });
    computed.is_ok_and(|computed| computed == expected)
}

/// A hash with the default parameters (those `portcullis hash-password`
/// uses), so a dummy verification costs about what a real one does.
pub(super) fn dummy_hash() -> Option<&'static str> {
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
        let memory = HashMemory::default();
        let mut verifier = memory.verifier();
        let phc = cheap_hash("correct horse");
        assert!(verifier.verify(&phc, "correct horse"));
        assert!(!verifier.verify(&phc, "correct horse "));
        assert!(!verifier.verify("not a hash", "correct horse"));
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$2nHd4DVZ0F6Eb3GDRUtb4Q";
        assert!(!verifier.verify(argon2i, "password"));
    }

    #[test]
    fn agrees_with_the_argon2_crate_on_a_default_cost_hash() {
        // The PHC string from `accepts_argon2id_with_any_params`, made by
        // the argon2 crate itself with the default parameters.
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let phc = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .expect("hash")
            .to_string();
        let memory = HashMemory::default();
        let mut verifier = memory.verifier();
        assert!(verifier.verify(&phc, "s3cret"));
        assert!(!verifier.verify(&phc, "s3cret!"));
    }

    #[test]
    fn working_memory_is_kept_and_reused() {
        let memory = HashMemory::default();
        let phc = cheap_hash("pw");
        {
            let mut a = memory.verifier();
            let mut b = memory.verifier();
            assert!(a.verify(&phc, "pw") && b.verify(&phc, "pw"));
        }
        // One memory per verifier that was in use at once, no more.
        assert_eq!(memory.kept(), 2);
        for _ in 0..10 {
            assert!(memory.verifier().verify(&phc, "pw"));
        }
        assert_eq!(memory.kept(), 2);
    }
}
