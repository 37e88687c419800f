//! Keeps `demo/users.toml` honest: the credentials documented in
//! `demo/README.md` must actually work (and carol must stay suspended).

use time::OffsetDateTime;

use super::{verify_totp, AuthFailure, Directory, HashMemory, TotpSecret, User, UserStatus};

const DEMO_USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const ALICE_TOTP: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";

#[test]
fn demo_users_match_the_readme() {
    let dir = Directory::load(DEMO_USERS).expect("demo/users.toml is valid");
    assert_eq!(dir.len(), 3);

    // One argon2 verification per user with default params: slow-ish in
    // debug builds, so exactly one each.
    let memory = HashMemory::default();
    let mut verifier = memory.verifier();
    let mut sign_in =
        |login: &str, password: &str| dir.authenticate(login, password, |_| false, &mut verifier);
    let alice = sign_in("alice", "alice-demo-pass").expect("alice signs in");
    assert_eq!(alice.groups(), ["admins", "staff"]);
    assert_eq!(alice.status(), UserStatus::Active);
    let secret = TotpSecret::from_base32(ALICE_TOTP).expect("documented secret");
    assert_eq!(alice.totp_secret(), Some(&secret));

    let bob = sign_in("bob", "bob-demo-pass").expect("bob signs in");
    assert_eq!(bob.groups(), ["staff"]);
    assert!(!bob.has_totp());

    assert_eq!(
        sign_in("carol", "carol-demo-pass").map(User::id),
        Err(AuthFailure::Suspended)
    );
    let carol = dir.by_login("carol").expect("carol exists");
    assert_eq!(carol.status(), UserStatus::Suspended);
    assert_eq!(carol.groups(), ["staff"]);
}

#[test]
fn alice_totp_secret_produces_verifiable_codes() {
    let secret = TotpSecret::from_base32(ALICE_TOTP).expect("documented secret");
    let now = OffsetDateTime::now_utc();
    let code = super::totp_code_at(&secret, now).expect("after epoch");
    assert!(verify_totp(&secret, &code, now).is_some());
}
