//! The request-signature harness: sidecar httpsig parse/verify/check_digest and auth::verify_headers with a fixed key, and their oracles.
//!
//! Oracles: ed25519 signing is deterministic, so a signature is genuine exactly when it equals
//! what the key holder signs for the same signature base. Whatever the input, a verified
//! signature must be that one; a checked Content-Digest must hold the body's real digest; a
//! request `verify_headers` accepts must carry a genuine signature, and its nonce must be
//! refused the second time. The structure-aware target starts from a genuinely signed request
//! and mutates it: accepted means every covered component and the body are unchanged, and an
//! unmutated request (signed the way peersync requires) is accepted.
use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;
use peersync::auth::{self, Caller, KnownDevice, NonceCache};
use peersync::httpsig::{self, RequestView};
use sha2::{Digest, Sha256, Sha512};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

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

fn lookup_fixed(keyid: String) -> impl Future<Output = peersync::error::Result<Option<KnownDevice>>> {
    std::future::ready(Ok((keyid == KEYID).then(|| KnownDevice {
        public_key: Some(hex::encode(vk().to_bytes())),
        authorized: true,
        tailscale_ip: None,
        quarantined: None,
    })))
}

/// All values of a header, trimmed, joined with ", " (RFC 9421 2.1); None when absent or not text.
fn header_values(h: &HeaderMap, name: &str) -> Option<String> {
    let vals: Vec<String> = h.get_all(name).iter().map(|v| v.to_str().map(|s| s.trim().to_string())).collect::<Result<_, _>>().ok()?;
    (!vals.is_empty()).then(|| vals.join(", "))
}

/// What a signature's holder would sign for: the base computed from the request now.
fn genuine(view: &RequestView<'_>, sig: &httpsig::Received) -> bool {
    match httpsig::signature_base(view, &sig.components, &sig.params_line) {
        Ok(base) => key().sign(base.as_bytes()).to_bytes().as_slice() == sig.signature.as_slice(),
        Err(_) => false,
    }
}

fn digest_holds(header: &str, body: &[u8]) -> bool {
    header.contains(&B64.encode(Sha256::digest(body))) || header.contains(&B64.encode(Sha512::digest(body)))
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
    let peer: SocketAddr = if flag(1) & 1 == 1 { "10.0.0.1:9".parse().unwrap() } else { "127.0.0.1:9".parse().unwrap() };
    let nonces = Mutex::new(NonceCache::default());
    let allow_local = flag(1) & 2 == 2;
    if let Ok(v) = block_on(auth::verify_headers(&parts, peer, allow_local, &nonces, lookup_fixed)) {
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

// ------------------------------------------------------------------ structure-aware

pub const COMPONENTS: [&str; 10] =
    ["@method", "@target-uri", "@authority", "@path", "@query", "@scheme", "@request-target", "date", "content-digest", "x-extra"];
pub const HEADERS: [&str; 9] = [
    "signature-input", "signature", "content-digest", "date", "host", "x-extra", "content-length", "transfer-encoding", "content-type",
];
pub const METHODS: [&str; 5] = ["POST", "GET", "PUT", "DELETE", "post"];
pub const PATHS: [&str; 5] = ["/sync/push", "/sync/pull", "/conflicts?status=pending", "/", "/conflicts/1/resolve"];

#[derive(Arbitrary, Debug)]
pub enum HMut {
    Method(String),
    MethodPick(u8),
    Authority(String),
    AuthorityCase(u8),
    Path(String),
    PathPick(u8),
    PathAppend(String),
    Body(Vec<u8>),
    BodyFlip(u16, u8),
    BodyAppend(u8),
    SetHeader(u8, String),
    AppendHeader(u8, String),
    RemoveHeader(u8),
    FlipHeader(u8, u16, u8),
    SpaceHeader(u8, u16),
    /// Re-sign with the key (a genuine signature again): accepted, unless something else is wrong.
    Resign,
}

#[derive(Arbitrary, Debug)]
pub struct MutInput {
    pub method: u8,
    pub path: u8,
    pub body: Option<Vec<u8>>,
    /// 0: peersync's own `httpsig::sign`; otherwise a bit set of COMPONENTS.
    pub style: u16,
    pub nonce: String,
    pub expires: Option<i8>,
    pub params_order: u8,
    pub muts: Vec<HMut>,
}

#[derive(Clone, PartialEq, Debug)]
struct Req {
    method: String,
    path: String,
    body: Vec<u8>,
    headers: HeaderMap,
}

impl Req {
    fn host(&self) -> String {
        self.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string()
    }

    fn view(&self) -> (String, HeaderMap) {
        (self.host(), self.headers.clone())
    }

    /// A covered component's value, computed independently of httpsig (RFC 9421 2.1, 2.2).
    fn component(&self, id: &str) -> Option<String> {
        let (path, query) = match self.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.path.as_str(), None),
        };
        Some(match id {
            "@method" => self.method.clone(),
            "@authority" => self.host().to_ascii_lowercase(),
            "@target-uri" => format!("http://{}{}", self.host(), self.path),
            "@path" => if path.is_empty() { "/".into() } else { path.into() },
            "@query" => format!("?{}", query.unwrap_or("")),
            "@scheme" => "http".into(),
            "@request-target" => self.path.clone(),
            h => header_values(&self.headers, h)?,
        })
    }
}

/// The path as the server sees it (`parts.uri.path_and_query()`, "/" when the URI has none);
/// false when the request line could not be built at all.
fn normalize(req: &mut Req) -> bool {
    match hyper::Request::builder().method(req.method.as_str()).uri(req.path.as_str()).body(()) {
        Ok(r) => {
            req.path = r.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
            true
        }
        Err(_) => false,
    }
}

fn sf_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Signs `req` (adding Content-Digest, Signature-Input, Signature) the way `input.style` says.
fn sign(req: &mut Req, input: &MutInput, now: i64) -> (Vec<String>, bool) {
    let buildable = normalize(req);
    let host_ok = req.headers.get_all("host").iter().count() == 1
        && req.headers.get("host").is_some_and(|h| h.to_str().is_ok());
    // Headers that tell the server a body follows (then it requires a signed digest).
    let body_signals = req.headers.contains_key("transfer-encoding")
        || req.headers.get_all("content-length").iter().any(|v| v.to_str().map_or(true, |v| v.trim() != "0"));
    for h in ["signature-input", "signature"] {
        req.headers.remove(h);
    }
    let nonce: String = input.nonce.chars().filter(|c| (' '..='~').contains(c)).take(40).collect();
    let nonce = if nonce.is_empty() { "n".to_string() } else { nonce };
    let has_body = !req.body.is_empty();
    if input.style == 0 {
        req.headers.remove("content-digest");
        let (host, headers) = req.view();
        let view = RequestView { method: &req.method, scheme: "http", authority: &host, path_and_query: &req.path, headers: &headers };
        let comps = if has_body { httpsig::COVERED_WITH_BODY } else { httpsig::COVERED_NO_BODY };
        // (fails only for a request line the server could not receive, e.g. a method with a newline)
        let Ok(out) = httpsig::sign(&view, has_body.then_some(req.body.as_slice()), &key(), KEYID, now, &nonce) else {
            return (comps.iter().map(|s| s.to_string()).collect(), false);
        };
        for (k, v) in out {
            req.headers.insert(k, v.parse().unwrap());
        }
        return (comps.iter().map(|s| s.to_string()).collect(), buildable && host_ok && (has_body || !body_signals));
    }
    let comps: Vec<String> =
        COMPONENTS.iter().enumerate().filter(|(k, _)| input.style >> k & 1 == 1).map(|(_, c)| c.to_string()).collect();
    if comps.iter().any(|c| c == "content-digest") {
        req.headers.insert("content-digest", httpsig::content_digest(&req.body).parse().unwrap());
    }
    let mut params = vec![
        format!("created={now}"),
        format!("keyid={}", sf_string(KEYID)),
        format!("alg={}", sf_string("ed25519")),
        format!("nonce={}", sf_string(&nonce)),
    ];
    if let Some(e) = input.expires {
        params.push(format!("expires={}", now + e as i64));
    }
    let n = params.len();
    params.rotate_left(input.params_order as usize % n);
    let line = format!("({});{}", comps.iter().map(|c| sf_string(c)).collect::<Vec<_>>().join(" "), params.join(";"));
    let (host, headers) = req.view();
    let view = RequestView { method: &req.method, scheme: "http", authority: &host, path_and_query: &req.path, headers: &headers };
    let Ok(base) = httpsig::signature_base(&view, &comps, &line) else { return (comps, false) };
    let sig = key().sign(base.as_bytes());
    req.headers.insert("signature-input", format!("sig1={line}").parse().unwrap());
    req.headers.insert("signature", format!("sig1=:{}:", B64.encode(sig.to_bytes())).parse().unwrap());
    let has = |c: &str| comps.iter().any(|x| x == c);
    let acceptable = buildable
        && host_ok
        && has("@method")
        && (has("@target-uri") || has("@path"))
        && (!(has_body || body_signals) || has("content-digest"))
        && input.expires.is_none_or(|e| e >= 2);
    (comps, acceptable)
}

fn header_name(i: u8) -> HeaderName {
    HeaderName::from_static(HEADERS[i as usize % HEADERS.len()])
}

fn mutate(req: &mut Req, m: &HMut, input: &MutInput, now: i64, signed: &mut (Vec<String>, bool), base: &mut Req) {
    match m {
        HMut::Method(s) => req.method = s.clone(),
        HMut::MethodPick(i) => req.method = METHODS[*i as usize % METHODS.len()].into(),
        HMut::Authority(s) => {
            if let Ok(v) = HeaderValue::from_str(s) {
                req.headers.insert("host", v);
            }
        }
        HMut::AuthorityCase(i) => {
            let mut h = req.host().into_bytes();
            if !h.is_empty() {
                let k = *i as usize % h.len();
                h[k] = if h[k].is_ascii_lowercase() { h[k].to_ascii_uppercase() } else { h[k].to_ascii_lowercase() };
                if let Ok(v) = HeaderValue::from_bytes(&h) {
                    req.headers.insert("host", v);
                }
            }
        }
        HMut::Path(s) => req.path = s.clone(),
        HMut::PathPick(i) => req.path = PATHS[*i as usize % PATHS.len()].into(),
        HMut::PathAppend(s) => req.path.push_str(s),
        HMut::Body(b) => req.body = b.clone(),
        HMut::BodyFlip(pos, x) => {
            if !req.body.is_empty() {
                let k = *pos as usize % req.body.len();
                req.body[k] ^= (*x).max(1);
            }
        }
        HMut::BodyAppend(b) => req.body.push(*b),
        HMut::SetHeader(i, s) => {
            if let Ok(v) = HeaderValue::from_str(s) {
                req.headers.insert(header_name(*i), v);
            }
        }
        HMut::AppendHeader(i, s) => {
            if let Ok(v) = HeaderValue::from_str(s) {
                req.headers.append(header_name(*i), v);
            }
        }
        HMut::RemoveHeader(i) => {
            req.headers.remove(header_name(*i));
        }
        HMut::FlipHeader(i, pos, x) => edit_header(req, *i, |b| {
            if !b.is_empty() {
                let k = *pos as usize % b.len();
                b[k] ^= (*x).max(1);
            }
        }),
        HMut::SpaceHeader(i, pos) => edit_header(req, *i, |b| {
            let k = *pos as usize % (b.len() + 1);
            b.insert(k, b' ');
        }),
        HMut::Resign => {
            *signed = sign(req, input, now);
            *base = req.clone();
        }
    }
}

fn edit_header(req: &mut Req, i: u8, f: impl FnOnce(&mut Vec<u8>)) {
    let name = header_name(i);
    let Some(v) = req.headers.get(&name) else { return };
    let mut b = v.as_bytes().to_vec();
    f(&mut b);
    if let Ok(v) = HeaderValue::from_bytes(&b) {
        req.headers.insert(name, v);
    }
}

/// Runs verify_headers + check_body; Some(caller) if accepted. Also checks the nonce is single-use.
fn server_check(req: &Req) -> Option<bool> {
    let built = hyper::Request::builder().method(req.method.as_str()).uri(req.path.as_str()).body(());
    let Ok(built) = built else { return None };
    let (mut parts, ()) = built.into_parts();
    parts.headers = req.headers.clone();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let nonces = Mutex::new(NonceCache::default());
    let accepted = match block_on(auth::verify_headers(&parts, peer, false, &nonces, lookup_fixed)) {
        Ok(v) => {
            check_accepted(&parts, &v.caller, false, peer);
            let again = block_on(auth::verify_headers(&parts, peer, false, &nonces, lookup_fixed));
            match again {
                // (or it expired meanwhile: the clock may have moved to the next second)
                Err(e) => assert!(
                    e.to_string().contains("nonce already used") || e.to_string().contains("expired"),
                    "a replay was refused for another reason: {e}"
                ),
                Ok(_) => panic!("a replayed request (same nonce) was accepted"),
            }
            v.check_body(&req.body).is_ok()
        }
        Err(_) => false,
    };
    Some(accepted)
}

pub fn run_mutate(data: &[u8]) {
    let Ok(input) = MutInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let now = auth::now_secs();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    headers.insert("date", HeaderValue::from_static("Tue, 20 Apr 2021 02:07:55 GMT"));
    headers.insert("x-extra", HeaderValue::from_static("extra"));
    let body = input.body.clone().unwrap_or_default();
    if !body.is_empty() {
        headers.insert("content-length", HeaderValue::from(body.len()));
    }
    let mut req = Req {
        method: METHODS[input.method as usize % 4].into(),
        path: PATHS[input.path as usize % PATHS.len()].into(),
        body,
        headers,
    };
    let mut signed = sign(&mut req, &input, now);
    let mut base = req.clone();
    if signed.1 {
        assert_eq!(server_check(&req), Some(true), "a genuinely signed request was refused: {req:?}");
    }
    for m in input.muts.iter().take(16) {
        mutate(&mut req, m, &input, now, &mut signed, &mut base);
    }
    if !normalize(&mut req) {
        return;
    }
    let Some(accepted) = server_check(&req) else { return };
    if std::env::var_os("PEERSYNC_FUZZ_DEBUG").is_some() {
        eprintln!("covered {:?}, acceptable as signed {}, accepted {accepted}\nsigned: {base:?}\nsent: {req:?}", signed.0, signed.1);
    }
    if req == base && signed.1 {
        assert!(accepted, "the request as signed was refused: {req:?}");
    }
    if accepted {
        // A signature that covers the digest pins the body; one that does not allows no body.
        if signed.0.iter().any(|c| c == "content-digest") {
            assert_eq!(req.body, base.body, "a request whose body changed was accepted");
        } else {
            assert!(req.body.is_empty(), "a body no signature covers was accepted");
        }
        for c in &signed.0 {
            assert_eq!(req.component(c), base.component(c), "a request whose covered {c} changed was accepted");
        }
        let now_sig = httpsig::parse(&req.headers).unwrap();
        let was = httpsig::parse(&base.headers).unwrap();
        let pick = |v: &[httpsig::Received]| v.iter().find(|s| s.keyid.is_some()).map(|s| s.params_line.clone());
        assert_eq!(pick(&now_sig), pick(&was), "accepted with other signature parameters");
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
        let view = RequestView { method, scheme: "http", authority: "127.0.0.1:8080", path_and_query: path, headers: &headers };
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
        let view = RequestView { method: "POST", scheme: "http", authority: "127.0.0.1:8080", path_and_query: "/sync/pull", headers: &headers };
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
    std::fs::write(raw.join("garbage"), Raw::join([b"GET", b"x", b"/", b"a=(", b"a=:", b"sha-256=:AA==:", b"", b""])).unwrap();

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
