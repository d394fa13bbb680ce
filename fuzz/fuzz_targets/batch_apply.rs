//! Fuzz target batch_apply: raw bytes -> parse_batch -> apply into a fresh receiver, with the invariants of src/batch.rs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peersync_fuzz::batch::run_bytes(data);
});
