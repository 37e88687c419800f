#![no_main]
// The whole target is its entry: crates/fuzz-entries `config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::config(data);
});
