#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = chiefsync_fuzz::harness::authz_changes(data);
});
