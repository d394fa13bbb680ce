//! Who sent a request: RFC 9421 signature checks against authorized devices, created window, nonce replay cache, source address, loopback monitors.
use crate::error::{Error, Result};
use crate::httpsig::{self, RequestView};
use crate::nonces::NonceCache;
use ed25519_dalek::VerifyingKey;
use hyper::http::request::Parts;
use peersync_core::Standing;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// `created` must be within this many seconds of the receiver's clock, either way.
pub const WINDOW_SECS: i64 = 300;

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What a signed request is checked against: this server (its device and the authorities a
/// request may name) and the nonces already used.
pub struct Gate {
    pub server: Server,
    pub nonces: Mutex<NonceCache>,
}

/// This server as signed requests must name it: a signature made for another server (another
/// `Host`) or with this device's own key is refused, so a captured request cannot be replayed
/// against it.
#[derive(Debug, Clone)]
pub struct Server {
    pub device_id: String,
    /// `host:port` names a request may carry (lowercase).
    authorities: Vec<String>,
    /// Serving on every address of the machine with no name given: any host on this port.
    any_host_on: Option<u16>,
}

impl Server {
    /// The names of a server listening on `listen`: that address (and `localhost` for a
    /// loopback one) plus `names` (`host` or `host:port`, the port defaulting to the listen port).
    pub fn new(device_id: &str, listen: SocketAddr, names: &[String]) -> Server {
        let port = listen.port();
        let mut authorities: Vec<String> = names
            .iter()
            .map(|n| {
                let n = n.trim().to_ascii_lowercase();
                if split_port(&n).1.is_some() {
                    n
                } else {
                    format!("{n}:{port}")
                }
            })
            .collect();
        let ip = listen.ip();
        let any = ip.is_unspecified();
        if !any {
            authorities.push(match ip {
                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                v4 => format!("{v4}:{port}"),
            });
            if ip.is_loopback() {
                authorities.push(format!("localhost:{port}"));
            }
        }
        let any_host_on = (any && names.is_empty()).then_some(port);
        Server { device_id: device_id.to_string(), authorities, any_host_on }
    }

    /// Whether a request's `Host` names this server.
    pub fn is_named_by(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = split_port(&host);
        let port = port.unwrap_or(80);
        if self.any_host_on == Some(port) {
            return true;
        }
        let full = if name.contains(':') { format!("[{name}]:{port}") } else { format!("{name}:{port}") };
        self.authorities.contains(&full)
    }

    /// The names, as errors list them.
    pub fn names(&self) -> String {
        match self.any_host_on {
            Some(p) => format!("any host on port {p}"),
            None => self.authorities.join(", "),
        }
    }
}

/// `host[:port]` (with `[v6]` literals) into its host and port.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
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
    gate: &Gate,
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
    if !gate.server.is_named_by(host) {
        return Err(Error::Unauthenticated(format!(
            "the request names {}, which is not this server ({}): a request signed for another server is refused",
            peersync_core::shown(host),
            gate.server.names()
        )));
    }
    if parts.headers.get_all("content-digest").iter().count() > 1 {
        return Err(Error::Unauthenticated("a request may carry one Content-Digest header, not several".into()));
    }
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
    if keyid == gate.server.device_id {
        return Err(Error::Unauthenticated(
            "the request is signed with this device's own key: a device never sends requests to itself (a replay?)"
                .into(),
        ));
    }
    let comps = &sig.components;
    let has = |c: &str| comps.iter().any(|x| x == c);
    // The signature must bind the whole request line to this server: the URI with its host, or
    // the host, the path and (when there is one) the query.
    let no_query = parts.uri.query().is_none();
    if !has("@method") || !(has("@target-uri") || (has("@authority") && has("@path") && (has("@query") || no_query))) {
        return Err(Error::Unauthenticated(
            "the signature must cover \"@method\" and \"@target-uri\" (or \"@authority\", \"@path\" and, when the URI has a query, \"@query\")".into(),
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
        Standing::Quarantined(why) | Standing::Retired(why) => return Err(Error::Forbidden(why)),
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
    if !gate.nonces.lock().unwrap().insert(&keyid, &nonce, now, WINDOW_SECS)? {
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
    fn a_server_is_named_by_its_listen_address_and_names() {
        let s = Server::new(
            "me",
            "127.0.0.2:8080".parse().unwrap(),
            &["Laptop.tailnet.ts.net".into(), "laptop:9000".into()],
        );
        for h in ["127.0.0.2:8080", "LOCALHOST:8080", "laptop.tailnet.ts.net:8080", "laptop:9000"] {
            assert!(s.is_named_by(h), "{h}");
        }
        for h in ["127.0.0.1:8080", "127.0.0.2:8081", "evil.example:1", "laptop:8080", "127.0.0.2", ""] {
            assert!(!s.is_named_by(h), "{h}");
        }
        let v6 = Server::new("me", "[::1]:80".parse().unwrap(), &[]);
        assert!(v6.is_named_by("[::1]") && v6.is_named_by("[::1]:80") && v6.is_named_by("localhost"));
        let any = Server::new("me", "0.0.0.0:8080".parse().unwrap(), &[]);
        assert!(any.is_named_by("10.1.2.3:8080") && !any.is_named_by("10.1.2.3:8081"));
        let named = Server::new("me", "0.0.0.0:8080".parse().unwrap(), &["100.64.0.1".into()]);
        assert!(named.is_named_by("100.64.0.1:8080") && !named.is_named_by("10.1.2.3:8080"));
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
