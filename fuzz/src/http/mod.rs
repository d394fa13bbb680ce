//! The request-signature harness: sidecar httpsig parse/verify/check_digest and auth::verify_headers with a fixed key, and their oracles.
//!
//! Oracles: ed25519 signing is deterministic, so a signature is genuine exactly when it equals
//! what the key holder signs for the same signature base. Whatever the input, a verified
//! signature must be that one; a checked Content-Digest must hold the body's real digest; a
//! request `verify_headers` accepts must carry a genuine signature, and its nonce must be
//! refused the second time. The structure-aware target starts from a genuinely signed request
//! and mutates it: accepted means every covered component and the body are unchanged, and an
//! unmutated request (signed the way peersync requires) is accepted.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hyper::header::HeaderValue;
use hyper::HeaderMap;
use peersync::auth::{self, Caller, Gate, Server};
use peersync::httpsig::{self, RequestView};
use peersync::nonces::NonceCache;
use peersync_core::Standing;
use sha2::{Digest, Sha256, Sha512};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

mod mutate;
pub use mutate::run_mutate;

pub const KEYID: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

pub fn vk() -> VerifyingKey {
    key().verifying_key()
}

/// Runs a future that never waits (verify_headers with a lookup that answers at once).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("verify_headers waited on something"),
    }
}

/// A server gate that `host` names (so the checks past the authority binding are exercised),
/// with an empty nonce cache.
pub fn gate_named_by(host: &str) -> Gate {
    let server = Server::new(SERVER_ID, "127.0.0.1:80".parse().unwrap(), &[host.to_string()]);
    Gate { server, nonces: Mutex::new(NonceCache::default()) }
}

/// The server's own device id (never the signer's).
pub const SERVER_ID: &str = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";

fn lookup_fixed(keyid: String) -> impl Future<Output = peersync::error::Result<Standing>> {
    std::future::ready(Ok(if keyid == KEYID {
        Standing::Trusted { public_key: Some(hex::encode(vk().to_bytes())), tailscale_ip: None }
    } else {
        Standing::Unknown
    }))
}

/// All values of a header, trimmed, joined with ", " (RFC 9421 2.1); None when absent or not text.
fn header_values(h: &HeaderMap, name: &str) -> Option<String> {
    let vals: Vec<String> =
        h.get_all(name).iter().map(|v| v.to_str().map(|s| s.trim().to_string())).collect::<Result<_, _>>().ok()?;
    (!vals.is_empty()).then(|| vals.join(", "))
}

/// What a signature's holder would sign for: the base computed from the request now.
fn genuine(view: &RequestView<'_>, sig: &httpsig::Received) -> bool {
    match httpsig::signature_base(view, &sig.components, &sig.params_line) {
        Ok(base) => key().sign(base.as_bytes()).to_bytes().as_slice() == sig.signature.as_slice(),
        Err(_) => false,
    }
}

/// Whether some `:`-delimited part of `header` decodes to the body's SHA-256 or SHA-512. Decoded as
/// RFC 8941 4.2.7 asks parsers to: padding optional, non-zero pad bits accepted.
fn digest_holds(header: &str, body: &[u8]) -> bool {
    use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let (sha256, sha512) = (Sha256::digest(body).to_vec(), Sha512::digest(body).to_vec());
    header.split(':').filter_map(|b| lenient.decode(b).ok()).any(|d| d == sha256 || d == sha512)
}

// ------------------------------------------------------------------ raw inputs

/// The raw target's input: NUL-separated fields `method, authority, path, Signature-Input,
/// Signature, Content-Digest, flags`, then the body (the rest). Missing fields are empty.
pub struct Raw<'a> {
    pub method: &'a [u8],
    pub authority: &'a [u8],
    pub path: &'a [u8],
    pub sig_input: &'a [u8],
    pub sig: &'a [u8],
    pub digest: &'a [u8],
    pub flags: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> Raw<'a> {
    pub fn split(data: &'a [u8]) -> Raw<'a> {
        let mut parts = data.splitn(8, |&b| b == 0);
        let mut next = || parts.next().unwrap_or(&[]);
        Raw {
            method: next(),
            authority: next(),
            path: next(),
            sig_input: next(),
            sig: next(),
            digest: next(),
            flags: next(),
            body: next(),
        }
    }

    pub fn join(fields: [&[u8]; 8]) -> Vec<u8> {
        fields.join(&0u8)
    }
}

fn put(h: &mut HeaderMap, name: &'static str, v: &[u8]) {
    if v.is_empty() {
        return;
    }
    // Several values separated by '\n' become several header lines.
    for part in v.split(|&b| b == b'\n') {
        if let Ok(val) = HeaderValue::from_bytes(part) {
            h.append(name, val);
        }
    }
}

pub fn run_raw(data: &[u8]) {
    let r = Raw::split(data);
    let mut headers = HeaderMap::new();
    put(&mut headers, "signature-input", r.sig_input);
    put(&mut headers, "signature", r.sig);
    put(&mut headers, "content-digest", r.digest);
    put(&mut headers, "host", r.authority);
    let flag = |k: usize| r.flags.get(k).copied().unwrap_or(0);
    if flag(0) & 1 == 1 {
        headers.insert("content-length", HeaderValue::from(r.body.len()));
    }
    if flag(0) & 2 == 2 {
        headers.insert("date", HeaderValue::from_static("Tue, 20 Apr 2021 02:07:55 GMT"));
    }
    let (Ok(method), Ok(authority), Ok(path)) =
        (std::str::from_utf8(r.method), std::str::from_utf8(r.authority), std::str::from_utf8(r.path))
    else {
        return;
    };
    let view = RequestView { method, scheme: "http", authority, path_and_query: path, headers: &headers };
    if let Ok(sigs) = httpsig::parse(&headers) {
        for s in &sigs {
            let ok = httpsig::verify(&view, s, &vk()).is_ok();
            let real = genuine(&view, s);
            assert_eq!(ok, real, "httpsig::verify said {ok} for a signature that is genuine: {real}: {s:?}");
        }
    }
    if let Ok(d) = std::str::from_utf8(r.digest) {
        if httpsig::check_digest(d, r.body).is_ok() {
            assert!(digest_holds(d, r.body), "check_digest accepted {d:?} for a body with another digest");
        }
    }
    // The whole check, as the server runs it on a request's head.
    let Ok(req) = hyper::Request::builder().method(r.method).uri(path).body(()) else { return };
    let (mut parts, ()) = req.into_parts();
    parts.headers = headers.clone();
    let peer: SocketAddr =
        if flag(1) & 1 == 1 { "10.0.0.1:9".parse().unwrap() } else { "127.0.0.1:9".parse().unwrap() };
    let host = header_values(&parts.headers, "host").unwrap_or_default();
    let gate = gate_named_by(&host);
    let allow_local = flag(1) & 2 == 2;
    if let Ok(v) = block_on(auth::verify_headers(&parts, peer, allow_local, &gate, lookup_fixed)) {
        check_accepted(&parts, &v.caller, allow_local, peer);
        if v.check_body(r.body).is_ok() && !r.body.is_empty() {
            let d = header_values(&parts.headers, "content-digest").unwrap_or_default();
            assert!(digest_holds(&d, r.body), "a body whose digest is not in the signed Content-Digest was accepted");
        }
    }
}

/// What must hold of a request `verify_headers` let through.
fn check_accepted(parts: &hyper::http::request::Parts, caller: &Caller, allow_local: bool, peer: SocketAddr) {
    match caller {
        Caller::LocalMonitor => {
            assert!(allow_local && peer.ip().is_loopback(), "an unsigned request from {peer} was let through");
            assert!(!parts.headers.contains_key("signature") && !parts.headers.contains_key("signature-input"));
        }
        Caller::Device(id) => {
            assert_eq!(id, KEYID);
            let host = parts.headers.get("host").unwrap().to_str().unwrap();
            let view = RequestView {
                method: parts.method.as_str(),
                scheme: "http",
                authority: host,
                path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                headers: &parts.headers,
            };
            let sigs = httpsig::parse(&parts.headers).unwrap();
            let s = sigs.iter().find(|s| s.keyid.is_some()).unwrap();
            assert!(genuine(&view, s), "verify_headers accepted a signature that is not genuine: {s:?}");
        }
    }
}

// ------------------------------------------------------------------ seeds

pub fn write_seeds(seeds: &Path) {
    let raw = seeds.join("httpsig_verify");
    std::fs::create_dir_all(&raw).unwrap();
    let body: &[u8] = br#"{"since":{},"limit":100}"#;
    for (name, method, path, with_body) in [
        ("pull", "POST", "/sync/pull", true),
        ("push_empty", "POST", "/sync/push", true),
        ("status", "GET", "/status", false),
        ("conflicts", "GET", "/conflicts?status=pending", false),
    ] {
        let headers = HeaderMap::new();
        let view = RequestView {
            method,
            scheme: "http",
            authority: "127.0.0.1:8080",
            path_and_query: path,
            headers: &headers,
        };
        let b = if name == "push_empty" { &b""[..] } else { body };
        let out = httpsig::sign(&view, with_body.then_some(b), &key(), KEYID, 1_700_000_000, "seed-nonce").unwrap();
        let get = |k: &str| out.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        let data = Raw::join([
            method.as_bytes(),
            b"127.0.0.1:8080",
            path.as_bytes(),
            get("signature-input").as_bytes(),
            get("signature").as_bytes(),
            get("content-digest").as_bytes(),
            &[u8::from(with_body)],
            if with_body { b } else { b"" },
        ]);
        std::fs::write(raw.join(name), data).unwrap();
    }
    // As requests-http-signature 2.0.0 signs: @method @authority @target-uri date content-digest.
    {
        let mut headers = HeaderMap::new();
        headers.insert("date", HeaderValue::from_static("Tue, 20 Apr 2021 02:07:55 GMT"));
        headers.insert("content-digest", httpsig::content_digest(body).parse().unwrap());
        let comps: Vec<String> =
            ["@method", "@authority", "@target-uri", "date", "content-digest"].iter().map(|s| s.to_string()).collect();
        let line = format!(
            "(\"@method\" \"@authority\" \"@target-uri\" \"date\" \"content-digest\");created=1700000000;keyid=\"{KEYID}\";alg=\"ed25519\";nonce=\"abc\""
        );
        let view = RequestView {
            method: "POST",
            scheme: "http",
            authority: "127.0.0.1:8080",
            path_and_query: "/sync/pull",
            headers: &headers,
        };
        let base = httpsig::signature_base(&view, &comps, &line).unwrap();
        let sig = B64.encode(key().sign(base.as_bytes()).to_bytes());
        let data = Raw::join([
            b"POST",
            b"127.0.0.1:8080",
            b"/sync/pull",
            format!("sig1={line}").as_bytes(),
            format!("sig1=:{sig}:").as_bytes(),
            httpsig::content_digest(body).as_bytes(),
            &[3],
            body,
        ]);
        std::fs::write(raw.join("requests_http_signature"), data).unwrap();
    }
    std::fs::write(raw.join("garbage"), Raw::join([b"GET", b"x", b"/", b"a=(", b"a=:", b"sha-256=:AA==:", b"", b""]))
        .unwrap();

    let m = seeds.join("httpsig_mutate");
    std::fs::create_dir_all(&m).unwrap();
    for (k, bytes) in [
        vec![0u8; 8],
        vec![1, 0, 1, 4, 1, 2, 3, 4, 0, 0],
        vec![0, 1, 0, 0xff, 0x01, 0, 0, 0],
        vec![0, 0, 1, 8, b'{', b'}', b'[', b']', 1, 0, 0x93, 0x01],
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(m.join(format!("seed_{k}")), bytes).unwrap();
    }
}
