#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = chiefsync_fuzz::harness::hub_automerge_sync(data);
});
