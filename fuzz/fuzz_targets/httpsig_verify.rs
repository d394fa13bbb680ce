//! Fuzz target httpsig_verify: raw header values, method, path, authority, body -> httpsig parse/verify/check_digest and auth::verify_headers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peersync_fuzz::http::run_raw(data);
});
