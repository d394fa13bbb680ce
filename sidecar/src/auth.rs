//! Who sent a request: RFC 9421 signature checks against authorized devices, created window, nonce replay cache, source address, loopback monitors.
use crate::error::{Error, Result};
use crate::httpsig::{self, RequestView};
use ed25519_dalek::VerifyingKey;
use hyper::http::request::Parts;
use peersync_core::Standing;
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// `created` must be within this many seconds of the receiver's clock, either way.
pub const WINDOW_SECS: i64 = 300;
/// Most nonces remembered at once; past this, new signed requests are refused until old ones expire.
const MAX_NONCES: usize = 1_000_000;

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Nonces seen within the window, per device: a replayed request is refused. Entries leave
/// once no request carrying them could still be inside the `created` window.
#[derive(Default)]
pub struct NonceCache {
    seen: HashSet<(String, String)>,
    order: VecDeque<(i64, (String, String))>,
}

impl NonceCache {
    /// Records `nonce` for `device`; false if it was already used.
    pub fn insert(&mut self, device: &str, nonce: &str, now: i64) -> Result<bool> {
        while let Some((expiry, _)) = self.order.front() {
            if *expiry >= now {
                break;
            }
            let (_, k) = self.order.pop_front().unwrap();
            self.seen.remove(&k);
        }
        let k = (device.to_string(), nonce.to_string());
        if self.seen.contains(&k) {
            return Ok(false);
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(Error::Timeout("too many signed requests in the last minutes; try again later".into()));
        }
        // A request created at now+WINDOW stays acceptable until now+2*WINDOW.
        self.order.push_back((now + 2 * WINDOW_SECS, k.clone()));
        self.seen.insert(k);
        Ok(true)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// An authorized device, by its id (the signature's keyid).
    Device(String),
    /// An unsigned request from this machine (a local Prometheus or a person with curl).
    LocalMonitor,
}

/// A request whose signature checked out; its body still has to match its digest.
pub struct Verified {
    pub caller: Caller,
    /// The Content-Digest the signature covers, to check against the body once read.
    digest: Option<String>,
    needs_digest: bool,
}

impl Verified {
    /// Checks the body against the signed Content-Digest.
    pub fn check_body(&self, body: &[u8]) -> Result<()> {
        match &self.digest {
            Some(d) => httpsig::check_digest(d, body).map_err(Error::Unauthenticated),
            None if self.needs_digest || !body.is_empty() => Err(Error::Unauthenticated(
                "a request with a body must sign its Content-Digest (RFC 9530 sha-256)".into(),
            )),
            None => Ok(()),
        }
    }
}

fn host_is_loopback(host: &str) -> bool {
    let h = host.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        h.rsplit_once(':')
            .filter(|(n, p)| !n.contains(':') && p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(h, |(n, _)| n)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Checks a request's headers: signature, key, created window, nonce, source address.
/// `lookup` tells where the device named by keyid stands with this one (core's `standing`). `allow_local` lets unsigned loopback requests
/// through as [`Caller::LocalMonitor`].
pub async fn verify_headers<F, Fut>(
    parts: &Parts,
    peer: SocketAddr,
    allow_local: bool,
    nonces: &Mutex<NonceCache>,
    lookup: F,
) -> Result<Verified>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Standing>>,
{
    let host = parts.headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok());
    let signed = parts.headers.contains_key("signature-input") || parts.headers.contains_key("signature");
    if !signed {
        if allow_local && peer.ip().is_loopback() && host.is_some_and(host_is_loopback) {
            return Ok(Verified { caller: Caller::LocalMonitor, digest: None, needs_digest: false });
        }
        return Err(Error::Unauthenticated(
            "this endpoint needs an RFC 9421 signed request (Signature-Input, Signature) from a paired device".into(),
        ));
    }
    let host = host.ok_or_else(|| Error::Unauthenticated("a signed request must carry a Host header".into()))?;
    let sigs = httpsig::parse(&parts.headers).map_err(Error::Unauthenticated)?;
    // peersync uses the first signature that names a key; others (e.g. a proxy's) are ignored.
    let sig = sigs
        .into_iter()
        .find(|s| s.keyid.is_some())
        .ok_or_else(|| Error::Unauthenticated("the signature has no keyid parameter (the device id)".into()))?;
    let keyid = sig.keyid.clone().unwrap_or_default();
    match sig.alg.as_deref() {
        Some("ed25519") => {}
        Some(other) => {
            return Err(Error::Unauthenticated(format!("signature alg \"{other}\" is not accepted; use ed25519")))
        }
        None => return Err(Error::Unauthenticated("the signature must name alg=\"ed25519\"".into())),
    }
    let comps = &sig.components;
    let has = |c: &str| comps.iter().any(|x| x == c);
    if !has("@method") || !(has("@target-uri") || has("@path")) {
        return Err(Error::Unauthenticated(
            "the signature must cover \"@method\" and \"@target-uri\" (or \"@path\")".into(),
        ));
    }
    let created = sig.created.ok_or_else(|| Error::Unauthenticated("the signature has no created parameter".into()))?;
    let nonce =
        sig.nonce.clone().ok_or_else(|| Error::Unauthenticated("the signature has no nonce parameter".into()))?;
    let (public_key, tailscale_ip) = match lookup(keyid.clone()).await? {
        Standing::Unknown => {
            return Err(Error::Unauthenticated(format!(
                "unknown key id {keyid}: this device is not paired here (run `peersync trust` on this side)"
            )))
        }
        Standing::Revoked => return Err(Error::Forbidden(format!("device {keyid} has been revoked here"))),
        Standing::Quarantined(why) => return Err(Error::Forbidden(why)),
        Standing::Trusted { public_key, tailscale_ip } => (public_key, tailscale_ip),
    };
    let pk = public_key
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| {
            Error::Forbidden(format!("device {keyid} has no valid public key here; trust it again with its key"))
        })?;
    if let Some(ip) = tailscale_ip.as_deref() {
        let want: Option<IpAddr> = ip.parse().ok().map(canonical);
        if want != Some(canonical(peer.ip())) {
            return Err(Error::Forbidden(format!(
                "device {keyid} must connect from its address {ip}, not {}",
                peer.ip()
            )));
        }
    }
    let now = now_secs();
    if (created - now).abs() > WINDOW_SECS {
        return Err(Error::Unauthenticated(format!(
            "signature created {created} is more than {WINDOW_SECS} s from this server's clock ({now}); check both clocks"
        )));
    }
    if sig.expires.is_some_and(|e| e < now) {
        return Err(Error::Unauthenticated("the signature has expired".into()));
    }
    let view = RequestView {
        method: parts.method.as_str(),
        scheme: "http",
        authority: host,
        path_and_query: parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        headers: &parts.headers,
    };
    httpsig::verify(&view, &sig, &pk).map_err(Error::Unauthenticated)?;
    if !nonces.lock().unwrap().insert(&keyid, &nonce, now)? {
        return Err(Error::Unauthenticated("nonce already used: a replayed request is refused".into()));
    }
    let digest = if has("content-digest") {
        parts.headers.get("content-digest").and_then(|v| v.to_str().ok()).map(str::to_string)
    } else {
        None
    };
    let has_body = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING)
        || parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    Ok(Verified { caller: Caller::Device(keyid), digest, needs_digest: has_body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_and_expire() {
        let mut c = NonceCache::default();
        assert!(c.insert("d", "n", 1000).unwrap());
        assert!(!c.insert("d", "n", 1001).unwrap());
        assert!(c.insert("e", "n", 1001).unwrap(), "per device");
        assert!(c.insert("d", "m", 1002 + 2 * WINDOW_SECS).unwrap());
        assert_eq!(c.len(), 1, "old entries pruned");
    }

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:80", "127.0.0.2"] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in ["evil.example:8080", "10.0.0.1", "127.0.0.1.nip.io", ""] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }
}
