#![no_main]
// The whole target is its entry: crates/fuzz-entries `syslog_filter`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz_entries::syslog_filter(data);
});
