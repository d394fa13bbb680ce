//! Fuzz target httpsig_mutate: structure-aware: a genuinely signed request, mutated -> verify_headers + check_body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peersync_fuzz::http::run_mutate(data);
});
