#![no_main]
// The whole target is its entry: crates/fuzz-entries `cookie_header`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::cookie_header(data);
});
