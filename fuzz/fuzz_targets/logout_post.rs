#![no_main]
// The whole target is its entry: crates/fuzz-entries `logout_post`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::logout_post(data);
});
