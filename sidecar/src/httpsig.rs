//! RFC 9421 HTTP Message Signatures with ed25519 (signature base, signing, parsing) and RFC 9530 Content-Digest.
//!
//! The signature base follows RFC 9421 section 2.5: one line `"<component id>": <value>` per
//! covered component, in the order the signer listed them, then `"@signature-params": ` and
//! the signature parameters exactly as serialized (RFC 8941) from `Signature-Input`, so the
//! signer's parameter order is kept. Supported components: `@method`, `@target-uri`,
//! `@authority`, `@scheme`, `@request-target`, `@path`, `@query` and header fields without
//! parameters. That covers what peersync sends and what requests-http-signature 2.0.0 sends.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hyper::HeaderMap;
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, List, ListEntry, Parameters, Parser};
use sha2::{Digest, Sha256, Sha512};

/// The label peersync signs under.
pub const LABEL: &str = "sig1";
/// What peersync covers: method, full URI and (when there is a body) its digest.
pub const COVERED_WITH_BODY: &[&str] = &["@method", "@target-uri", "content-digest"];
pub const COVERED_NO_BODY: &[&str] = &["@method", "@target-uri"];

/// The parts of a request a signature can cover.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    /// host[:port], as in the Host header.
    pub authority: &'a str,
    /// path and query as sent in the request line (origin form).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// One signature found in a request.
#[derive(Debug, Clone)]
pub struct Received {
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub alg: Option<String>,
    pub keyid: Option<String>,
    /// The inner list with its parameters, serialized: the `@signature-params` value.
    pub params_line: String,
    pub signature: Vec<u8>,
}

fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for v in headers.get_all(name) {
        parts.push(v.to_str().map_err(|_| format!("header {name} is not visible ASCII"))?.trim().to_string());
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join(", ")) })
}

/// Parses `Signature-Input` and `Signature` into the signatures they carry (label order).
pub fn parse(headers: &HeaderMap) -> Result<Vec<Received>, String> {
    let input = header_text(headers, "signature-input")?.ok_or("the request has no Signature-Input header")?;
    let sigs = header_text(headers, "signature")?.ok_or("the request has no Signature header")?;
    let input: Dictionary = Parser::new(&input).parse().map_err(|e| format!("Signature-Input is malformed: {e}"))?;
    let sigs: Dictionary = Parser::new(&sigs).parse().map_err(|e| format!("Signature is malformed: {e}"))?;
    let mut out = Vec::new();
    for (label, entry) in &input {
        let ListEntry::InnerList(list) = entry else {
            return Err(format!("Signature-Input member {} is not an inner list", label.as_str()));
        };
        let signature = match sigs.get(label) {
            Some(ListEntry::Item(Item { bare_item: BareItem::ByteSequence(b), .. })) => b.clone(),
            Some(_) => return Err(format!("Signature member {} is not a byte sequence", label.as_str())),
            None => return Err(format!("Signature has no member {} to match Signature-Input", label.as_str())),
        };
        let mut components = Vec::new();
        for item in &list.items {
            let BareItem::String(s) = &item.bare_item else {
                return Err("a covered component identifier is not a string".into());
            };
            if !item.params.is_empty() {
                return Err(format!(
                    "covered component \"{}\" has parameters, which peersync does not support",
                    s.as_str()
                ));
            }
            if components.iter().any(|c| c == s.as_str()) {
                return Err(format!("covered component \"{}\" is listed twice", s.as_str()));
            }
            components.push(s.as_str().to_string());
        }
        let int = |k: &str| -> Result<Option<i64>, String> {
            match list.params.get(k) {
                None => Ok(None),
                Some(BareItem::Integer(i)) => Ok(Some(i64::from(*i))),
                Some(_) => Err(format!("signature parameter {k} must be an integer")),
            }
        };
        let text = |k: &str| -> Result<Option<String>, String> {
            match list.params.get(k) {
                None => Ok(None),
                Some(BareItem::String(s)) => Ok(Some(s.as_str().to_string())),
                Some(_) => Err(format!("signature parameter {k} must be a string")),
            }
        };
        let params_line = List::from([ListEntry::InnerList(list.clone())])
            .serialize()
            .ok_or("cannot serialize the signature parameters")?;
        out.push(Received {
            created: int("created")?,
            expires: int("expires")?,
            nonce: text("nonce")?,
            alg: text("alg")?,
            keyid: text("keyid")?,
            components,
            params_line,
            signature,
        });
    }
    if out.is_empty() {
        return Err("Signature-Input carries no signature".into());
    }
    Ok(out)
}

/// The value of one covered component of `req`.
fn component_value(req: &RequestView<'_>, id: &str) -> Result<String, String> {
    let (path, query) = match req.path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path_and_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(match id {
        "@method" => req.method.to_string(),
        "@scheme" => req.scheme.to_ascii_lowercase(),
        "@authority" => req.authority.to_ascii_lowercase(),
        "@target-uri" => format!("{}://{}{}", req.scheme.to_ascii_lowercase(), req.authority, req.path_and_query),
        "@request-target" => req.path_and_query.to_string(),
        "@path" => path.to_string(),
        "@query" => format!("?{}", query.unwrap_or("")),
        id if id.starts_with('@') => return Err(format!("covered component \"{id}\" is not supported by peersync")),
        name => {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(format!("covered header \"{name}\" must be lowercase"));
            }
            header_text(req.headers, name)?.ok_or_else(|| format!("covered header \"{name}\" is not in the request"))?
        }
    })
}

/// The signature base (RFC 9421 section 2.5) for `components` and the serialized parameters.
pub fn signature_base(req: &RequestView<'_>, components: &[String], params_line: &str) -> Result<String, String> {
    let mut base = String::new();
    for id in components {
        let value = component_value(req, id)?;
        if value.contains('\n') {
            return Err(format!("covered component \"{id}\" contains a newline"));
        }
        base.push_str(&Item::new(sfv::String::from_string(id.clone()).map_err(|(e, _)| e.to_string())?).serialize());
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params_line);
    Ok(base)
}

/// Checks an ed25519 signature over the base of `sig`.
pub fn verify(req: &RequestView<'_>, sig: &Received, key: &VerifyingKey) -> Result<(), String> {
    let base = signature_base(req, &sig.components, &sig.params_line)?;
    let bytes: [u8; 64] =
        sig.signature.as_slice().try_into().map_err(|_| "the signature is not 64 bytes (ed25519)".to_string())?;
    key.verify_strict(base.as_bytes(), &Signature::from_bytes(&bytes))
        .map_err(|_| "the signature does not verify (wrong key, or the request was altered)".to_string())
}

/// The `Content-Digest` value for `body` (RFC 9530, sha-256).
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

/// Checks a `Content-Digest` header against `body`: sha-256 or sha-512 must be present, and
/// every one of them present must match.
pub fn check_digest(header: &str, body: &[u8]) -> Result<(), String> {
    let dict: Dictionary = Parser::new(header).parse().map_err(|e| format!("Content-Digest is malformed: {e}"))?;
    let mut checked = 0;
    for (alg, entry) in &dict {
        let ListEntry::Item(Item { bare_item: BareItem::ByteSequence(want), .. }) = entry else {
            return Err(format!("Content-Digest member {} is not a byte sequence", alg.as_str()));
        };
        let got = match alg.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        if &got != want {
            return Err(format!("Content-Digest {} does not match the body (the body was altered)", alg.as_str()));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err("Content-Digest has no sha-256 or sha-512 member".into());
    }
    Ok(())
}

/// A random nonce: 16 bytes, base64.
pub fn new_nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("operating system randomness");
    B64.encode(b)
}

/// Signs a request: returns the headers to add (`Content-Digest` when there is a body,
/// `Signature-Input`, `Signature`). `req.headers` must already hold any covered header
/// other than `content-digest`.
pub fn sign(
    req: &RequestView<'_>,
    body: Option<&[u8]>,
    key: &SigningKey,
    keyid: &str,
    created: i64,
    nonce: &str,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    let mut headers = req.headers.clone();
    let covered = match body {
        Some(b) => {
            let d = content_digest(b);
            headers.insert("content-digest", d.parse().map_err(|_| "bad digest header")?);
            out.push(("content-digest", d));
            COVERED_WITH_BODY
        }
        None => COVERED_NO_BODY,
    };
    let mut params = Parameters::new();
    let key_of = |k: &str| sfv::Key::from_string(k.to_string()).map_err(|(e, _)| e.to_string());
    let string = |s: &str| sfv::String::from_string(s.to_string()).map_err(|(e, _)| e.to_string());
    params.insert(key_of("created")?, BareItem::Integer(sfv::Integer::try_from(created).map_err(|e| e.to_string())?));
    params.insert(key_of("keyid")?, BareItem::String(string(keyid)?));
    params.insert(key_of("alg")?, BareItem::String(string("ed25519")?));
    params.insert(key_of("nonce")?, BareItem::String(string(nonce)?));
    let items = covered.iter().map(|c| Ok(Item::new(string(c)?))).collect::<Result<Vec<_>, String>>()?;
    let inner = InnerList::with_params(items, params);
    let params_line = List::from([ListEntry::InnerList(inner)]).serialize().ok_or("cannot serialize")?;
    let view = RequestView { headers: &headers, ..*req };
    let components: Vec<String> = covered.iter().map(|s| s.to_string()).collect();
    let base = signature_base(&view, &components, &params_line)?;
    let sig = key.sign(base.as_bytes());
    out.push(("signature-input", format!("{LABEL}={params_line}")));
    out.push(("signature", format!("{LABEL}=:{}:", B64.encode(sig.to_bytes()))));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: "POST",
            scheme: "http",
            authority: "127.0.0.1:8080",
            path_and_query: "/sync/pull?x=1",
            headers,
        }
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let body = br#"{"since":{}}"#;
        let mut headers = HeaderMap::new();
        for (k, v) in sign(&view(&HeaderMap::new()), Some(body), &key, "dev", 1_700_000_000, "n1").unwrap() {
            headers.insert(k, v.parse().unwrap());
        }
        let got = parse(&headers).unwrap();
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(s.components, ["@method", "@target-uri", "content-digest"]);
        assert_eq!(
            (s.created, s.keyid.as_deref(), s.alg.as_deref(), s.nonce.as_deref()),
            (Some(1_700_000_000), Some("dev"), Some("ed25519"), Some("n1"))
        );
        assert!(s
            .params_line
            .starts_with(r#"("@method" "@target-uri" "content-digest");created=1700000000;keyid="dev""#));
        verify(&view(&headers), s, &key.verifying_key()).unwrap();
        check_digest(headers["content-digest"].to_str().unwrap(), body).unwrap();
        assert!(check_digest(headers["content-digest"].to_str().unwrap(), b"{}").is_err());
        let other = RequestView { path_and_query: "/sync/push", ..view(&headers) };
        assert!(verify(&other, s, &key.verifying_key()).is_err());
        let wrong = SigningKey::from_bytes(&[8u8; 32]);
        assert!(verify(&view(&headers), s, &wrong.verifying_key()).is_err());
    }

    #[test]
    fn base_matches_rfc_layout() {
        let mut headers = HeaderMap::new();
        headers.insert("date", "Tue, 20 Apr 2021 02:07:55 GMT".parse().unwrap());
        let comps: Vec<String> =
            ["@method", "@authority", "@path", "@query", "date"].iter().map(|s| s.to_string()).collect();
        let base = signature_base(&view(&headers), &comps, "(x)").unwrap();
        assert_eq!(
            base,
            "\"@method\": POST\n\"@authority\": 127.0.0.1:8080\n\"@path\": /sync/pull\n\"@query\": ?x=1\n\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@signature-params\": (x)"
        );
    }

    #[test]
    fn refuses_parameters_and_duplicates() {
        let mut h = HeaderMap::new();
        h.insert("signature-input", r#"a=("content-digest";sf);created=1"#.parse().unwrap());
        h.insert("signature", "a=:AAAA:".parse().unwrap());
        assert!(parse(&h).unwrap_err().contains("parameters"));
        h.insert("signature-input", r#"a=("@method" "@method");created=1"#.parse().unwrap());
        assert!(parse(&h).unwrap_err().contains("twice"));
    }
}
