#![no_main]
// The whole target is its entry: crates/fuzz-entries `authn_request_post`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::authn_request_post(data);
});
