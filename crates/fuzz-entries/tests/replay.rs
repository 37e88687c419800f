//! The fuzz targets' memory, on stable: every file under
//! `fuzz/regressions/<target>/` (inputs that once crashed) and under
//! `fuzz/seeds/<target>/` goes through the target's entry, exactly as
//! libFuzzer hands it over. See fuzz/README.md for adding one.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use portcullis_fuzz_entries::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// (target, file) for every file under `fuzz/<kind>/<target>/`; a directory
/// named after no target is an error, so a typo cannot hide a regression.
fn inputs(kind: &str) -> Vec<(&'static str, PathBuf)> {
    let root = fuzz_dir().join(kind);
    let mut out = Vec::new();
    let Ok(dirs) = fs::read_dir(&root) else {
        return out;
    };
    for dir in dirs {
        let dir = dir.expect("directory entry").path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (target, _) = TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("{} names no fuzz target", dir.display()));
        for file in fs::read_dir(&dir).expect("read target directory") {
            let file = file.expect("directory entry").path();
            if file.is_file() && file.file_name().is_some_and(|n| n != ".gitkeep") {
                out.push((*target, file));
            }
        }
    }
    out.sort();
    out
}

fn entry(target: &str) -> portcullis_fuzz_entries::Entry {
    TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .map(|(_, e)| *e)
        .expect("known target")
}

/// Runs every input, reporting each one that panics by its path.
fn replay(kind: &str) -> Vec<(&'static str, PathBuf, bool)> {
    let mut results = Vec::new();
    let mut panicked = Vec::new();
    for (target, file) in inputs(kind) {
        let data = fs::read(&file).expect("read input");
        match catch_unwind(AssertUnwindSafe(|| entry(target)(&data))) {
            Ok(accepted) => results.push((target, file, accepted)),
            Err(_) => panicked.push(file.display().to_string()),
        }
    }
    assert!(panicked.is_empty(), "inputs that panic: {panicked:#?}");
    results
}

#[test]
fn past_crashes_stay_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_seeds_and_the_accepted_ones_are_accepted() {
    let results = replay("seeds");
    for (target, _) in TARGETS {
        assert!(
            results.iter().any(|(t, _, _)| t == target),
            "no seeds for {target}: run fuzz-seeds (fuzz/README.md)"
        );
    }
    let refused: Vec<String> = results
        .iter()
        .filter(|(_, file, accepted)| {
            !accepted
                && file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("accepted-"))
        })
        .map(|(_, file, _)| file.display().to_string())
        .collect();
    assert!(
        refused.is_empty(),
        "seeds named accepted-* that their entry refuses (regenerate them): {refused:#?}"
    );
}

/// The leak the saml_response target found: when the Assertion alone was
/// signed, verification kept the whole unsigned envelope of the Response
/// (samael re-rooted the document and never freed the old root). Leak
/// sanitizers only run under the fuzzer, so here it is measured: before
/// the fix, 40 verifications of this padded Response kept about 60 MiB.
#[test]
fn a_verified_response_leaves_its_envelope_behind_in_no_memory() {
    let file = fuzz_dir().join("regressions/saml_response/leak-unsigned-envelope-after-reroot.xml");
    let data = fs::read(&file).expect("read the regression");
    let verify = portcullis_fuzz_entries::saml_response;
    assert!(verify(&data), "the padded Response verifies");
    let Some(before) = rss_kib() else {
        return; // no /proc: not Linux
    };
    for _ in 0..40 {
        verify(&data);
    }
    let grown = rss_kib().unwrap_or(before).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "resident memory grew by {grown} KiB over 40 verifications"
    );
}

fn rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
