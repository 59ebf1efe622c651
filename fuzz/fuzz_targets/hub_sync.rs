#![no_main]

libfuzzer_sys::fuzz_target!(
    init: chiefsync_fuzz::report_only_uncaught_panics(),
    |data: &[u8]| {
        let _ = chiefsync_fuzz::harness::hub_sync(data);
    }
);
