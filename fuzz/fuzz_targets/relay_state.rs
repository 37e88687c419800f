#![no_main]
// The whole target is its entry: crates/fuzz-entries `relay_state`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::relay_state(data);
});
