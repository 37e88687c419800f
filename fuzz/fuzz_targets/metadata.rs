#![no_main]
// The whole target is its entry: crates/fuzz-entries `metadata`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::metadata(data);
});
