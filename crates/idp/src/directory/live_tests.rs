use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::super::test_hashes::cheap_hash;
use super::super::{TotpSecret, UserStatus};
use super::*;
use crate::atomic_file::backup_path;

const SECRET: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";

fn users_text(count: usize) -> String {
    let hash = cheap_hash("pw");
    let mut text = String::from("# The test's users; this comment must survive edits.\n");
    for i in 0..count {
        text += &format!(
            "\n[[user]]\nid = \"u{i}\"\nlogin = \"user{i}\"\nemail = \"user{i}@example.com\"\n\
             first_name = \"F{i}\"\nlast_name = \"L{i}\"\ngroups = [\"staff\"]\n\
             password_hash = \"{hash}\"\ntotp_secret = \"{SECRET}\"\n\
             profile = {{ department = \"D{i}\", roles = [\"a\", \"b\"] }}\n"
        );
    }
    text
}

fn live_in(dir: &tempfile::TempDir, count: usize) -> (LiveDirectory, std::path::PathBuf) {
    let path = dir.path().join("users.toml");
    std::fs::write(&path, users_text(count)).expect("write");
    let live = LiveDirectory::new(Directory::load(&path).expect("load"));
    (live, path)
}

#[test]
fn an_edit_writes_the_file_keeps_the_previous_one_and_swaps_the_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let (live, path) = live_in(&dir, 2);
    let original = std::fs::read_to_string(&path).expect("read");
    let applied = live.apply("u1", Lifecycle::Suspend).expect("suspend");
    assert_eq!(applied.before.status(), UserStatus::Active);
    assert_eq!(applied.after.status(), UserStatus::Suspended);
    assert_eq!(
        live.current().by_id("u1").map(User::status),
        Some(UserStatus::Suspended)
    );
    assert_eq!(
        std::fs::read_to_string(backup_path(&path)).expect("bak"),
        original
    );
    let written = std::fs::read_to_string(&path).expect("read");
    assert!(written.starts_with("# The test's users; this comment must survive edits.\n"));
    let reloaded = Directory::load(&path).expect("the written file loads");
    assert_eq!(
        reloaded.by_id("u1").map(User::status),
        Some(UserStatus::Suspended)
    );
    assert_eq!(
        reloaded.by_id("u0").map(User::status),
        Some(UserStatus::Active)
    );
}

#[test]
fn written_files_load_back_to_the_same_users() {
    let dir = tempfile::tempdir().expect("dir");
    let (live, path) = live_in(&dir, 3);
    let before = live.current();
    live.apply("u0", Lifecycle::Suspend).expect("suspend");
    live.apply("u1", Lifecycle::Deactivate).expect("deactivate");
    live.apply("u2", Lifecycle::ResetFactors).expect("reset");
    let after = Directory::load(&path).expect("loads");
    let secret = TotpSecret::from_base32(SECRET).expect("secret");
    for (old, new) in before.users().zip(after.users()) {
        assert_eq!(old.id(), new.id());
        assert_eq!(old.login(), new.login());
        assert_eq!(old.email(), new.email());
        assert_eq!(old.first_name(), new.first_name());
        assert_eq!(old.last_name(), new.last_name());
        assert_eq!(old.groups(), new.groups());
        assert_eq!(old.password_hash(), new.password_hash(), "hash unchanged");
        assert_eq!(old.profile("department"), new.profile("department"));
        assert_eq!(old.profile("roles"), new.profile("roles"));
    }
    let status = |id| after.by_id(id).map(User::status);
    assert_eq!(status("u0"), Some(UserStatus::Suspended));
    assert_eq!(status("u1"), Some(UserStatus::Deprovisioned));
    assert_eq!(status("u2"), Some(UserStatus::Active));
    assert_eq!(
        after.by_id("u0").and_then(User::totp_secret),
        Some(&secret),
        "secret unchanged"
    );
    assert!(after.by_id("u2").is_some_and(|u| !u.has_totp()));
    // The directory in force is what the file says.
    assert_eq!(
        live.current().text(),
        std::fs::read_to_string(&path).expect("read")
    );
}

#[test]
fn refused_operations_change_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (live, path) = live_in(&dir, 1);
    let original = std::fs::read_to_string(&path).expect("read");
    assert!(matches!(
        live.apply("u0", Lifecycle::Unsuspend),
        Err(EditError::Transition(_))
    ));
    assert!(matches!(
        live.apply("nobody", Lifecycle::Suspend),
        Err(EditError::UnknownUser { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), original);
    assert!(!backup_path(&path).exists(), "nothing was written");
    // An unlock is allowed but leaves the file alone.
    live.apply("u0", Lifecycle::Unlock).expect("unlock");
    assert!(!backup_path(&path).exists());
}

#[test]
fn a_failed_write_keeps_the_file_and_the_directory_in_force() {
    let dir = tempfile::tempdir().expect("dir");
    let (live, path) = live_in(&dir, 1);
    let original = std::fs::read_to_string(&path).expect("read");
    let tmp = crate::atomic_file::sibling(&path, ".tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    std::fs::write(tmp.join("occupied"), "x").expect("write");
    assert!(matches!(
        live.apply("u0", Lifecycle::Suspend),
        Err(EditError::Write(_))
    ));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), original);
    assert_eq!(
        live.current().by_id("u0").map(User::status),
        Some(UserStatus::Active),
        "the directory in force did not change either"
    );
    std::fs::remove_dir_all(&tmp).expect("cleanup");
    live.apply("u0", Lifecycle::Suspend).expect("works again");
}

#[test]
fn concurrent_edits_all_persist_and_the_file_always_loads() {
    const THREADS: usize = 8;
    let dir = tempfile::tempdir().expect("dir");
    let (live, path) = live_in(&dir, THREADS);
    let live = Arc::new(live);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let text = std::fs::read_to_string(&path).expect("the file is always there");
                Directory::from_str(&text, &path).expect("the file always loads");
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|i| {
            let live = live.clone();
            std::thread::spawn(move || {
                let id = format!("u{i}");
                for op in [
                    Lifecycle::Suspend,
                    Lifecycle::Unsuspend,
                    Lifecycle::ResetFactors,
                    Lifecycle::Suspend,
                ] {
                    live.apply(&id, op)
                        .unwrap_or_else(|e| panic!("{id} {op}: {e}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().expect("reader") > 0);
    let on_disk = Directory::load(&path).expect("loads");
    for i in 0..THREADS {
        let user = on_disk.by_id(&format!("u{i}")).expect("user");
        assert_eq!(user.status(), UserStatus::Suspended, "u{i}");
        assert!(!user.has_totp(), "u{i}");
    }
    assert_eq!(live.current().text(), on_disk.text());
}

#[test]
fn reload_swaps_in_the_file_or_keeps_the_directory_in_force() {
    let dir = tempfile::tempdir().expect("dir");
    let (live, path) = live_in(&dir, 2);
    let edited = users_text(2).replacen("totp_secret", "status = \"SUSPENDED\"\ntotp_secret", 1);
    std::fs::write(&path, edited).expect("write");
    let reloaded = live.reload(&path).expect("reload");
    assert_eq!(
        reloaded.before.by_id("u0").map(User::status),
        Some(UserStatus::Active)
    );
    assert_eq!(
        live.current().by_id("u0").map(User::status),
        Some(UserStatus::Suspended)
    );
    std::fs::write(&path, "[[user]]\nid = \"broken\n").expect("write");
    assert!(live.reload(&path).is_err());
    assert_eq!(live.current().len(), 2, "the running users stay");
}
