//! Fuzz target batch_mutate: structure-aware: a real batch edited field by field (re-hash, re-sign) -> apply, with the invariants of src/batch.rs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peersync_fuzz::mutate::run(data);
});
