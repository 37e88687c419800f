#![no_main]
// The whole target is its entry: crates/fuzz-entries `session_cookie`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::session_cookie(data);
});
