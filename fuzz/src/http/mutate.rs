//! The structure-aware request-signature target: a genuinely signed request, mutated; accepted means nothing covered changed.
use super::*;
use arbitrary::{Arbitrary, Unstructured};
use hyper::header::HeaderName;

pub const COMPONENTS: [&str; 10] = [
    "@method",
    "@target-uri",
    "@authority",
    "@path",
    "@query",
    "@scheme",
    "@request-target",
    "date",
    "content-digest",
    "x-extra",
];
pub const HEADERS: [&str; 9] = [
    "signature-input",
    "signature",
    "content-digest",
    "date",
    "host",
    "x-extra",
    "content-length",
    "transfer-encoding",
    "content-type",
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

    /// `f` of this request as httpsig sees it.
    fn with_view<T>(&self, f: impl FnOnce(&RequestView) -> T) -> T {
        let host = self.host();
        f(&RequestView {
            method: &self.method,
            scheme: "http",
            authority: &host,
            path_and_query: &self.path,
            headers: &self.headers,
        })
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
            "@path" => {
                if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                }
            }
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
    let host_ok =
        req.headers.get_all("host").iter().count() == 1 && req.headers.get("host").is_some_and(|h| h.to_str().is_ok());
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
        let comps = if has_body { httpsig::COVERED_WITH_BODY } else { httpsig::COVERED_NO_BODY };
        // (fails only for a request line the server could not receive, e.g. a method with a newline)
        let signed =
            req.with_view(|view| httpsig::sign(view, has_body.then_some(&req.body[..]), &key(), KEYID, now, &nonce));
        let Ok(out) = signed else {
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
    let Ok(base) = req.with_view(|view| httpsig::signature_base(view, &comps, &line)) else { return (comps, false) };
    let sig = key().sign(base.as_bytes());
    req.headers.insert("signature-input", format!("sig1={line}").parse().unwrap());
    req.headers.insert("signature", format!("sig1=:{}:", B64.encode(sig.to_bytes())).parse().unwrap());
    let has = |c: &str| comps.iter().any(|x| x == c);
    let acceptable = buildable
        && host_ok
        && has("@method")
        && (has("@target-uri") || (has("@authority") && has("@path") && (has("@query") || !req.path.contains('?'))))
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
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let gate = gate_named_by(&host);
    let accepted = match block_on(auth::verify_headers(&parts, peer, false, &gate, lookup_fixed)) {
        Ok(v) => {
            check_accepted(&parts, &v.caller, false, peer);
            let again = block_on(auth::verify_headers(&parts, peer, false, &gate, lookup_fixed));
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
        eprintln!(
            "covered {:?}, acceptable as signed {}, accepted {accepted}\nsigned: {base:?}\nsent: {req:?}",
            signed.0, signed.1
        );
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
