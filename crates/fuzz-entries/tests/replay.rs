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
