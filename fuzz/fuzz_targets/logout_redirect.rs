#![no_main]
// The whole target is its entry: crates/fuzz-entries `logout_redirect`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::logout_redirect(data);
});
