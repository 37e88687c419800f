#![no_main]
// The whole target is its entry: crates/fuzz-entries `client_ip`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::client_ip(data);
});
