#![no_main]
// The whole target is its entry: crates/fuzz-entries `syslog_query`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::syslog_query(data);
});
