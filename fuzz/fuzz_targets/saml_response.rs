#![no_main]
// The whole target is its entry: crates/fuzz-entries `saml_response`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::saml_response(data);
});
