//! Fuzz target literals: record_id literals, change_data values, vectors: parse and round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peersync_fuzz::literals::run(data);
});
