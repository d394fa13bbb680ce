//! The page's gate: the one-time token that becomes a session cookie, the per-session CSRF
//! token, and the `Host`, `Origin`/`Referer` checks every request passes.
use hyper::header::{COOKIE, HOST, ORIGIN, REFERER};
use hyper::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "peersync_ui";

/// 32 random bytes from the operating system, as hex.
pub fn random_hex() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    Ok(hex::encode(b))
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token not yet exchanged, and the sessions (session id → CSRF token).
pub struct Sessions {
    token: Mutex<Option<String>>,
    live: Mutex<HashMap<String, String>>,
}

/// Why a request is refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// 401: no session (no cookie, or an unknown one).
    NoSession,
    /// 403: the rest (token used or wrong, Host, Origin, CSRF).
    Forbidden(&'static str),
}

impl Sessions {
    /// Sessions with one fresh token; returns them and the token.
    pub fn new() -> Result<(Sessions, String), String> {
        let token = random_hex()?;
        Ok((Sessions { token: Mutex::new(Some(token.clone())), live: Mutex::default() }, token))
    }

    /// Exchanges the one-time token for a new session: its id (the cookie) and CSRF token.
    /// The token works once.
    pub fn exchange(&self, token: &str) -> Result<(String, String), Refusal> {
        let mut t = self.token.lock().unwrap();
        match t.as_deref() {
            Some(want) if same_secret(want, token) => {}
            Some(_) => return Err(Refusal::Forbidden("this link's token is wrong")),
            None => {
                return Err(Refusal::Forbidden("this link was already used; run `peersync ui` again for a new one"))
            }
        }
        let sid = random_hex().map_err(|_| Refusal::Forbidden("no randomness"))?;
        let csrf = random_hex().map_err(|_| Refusal::Forbidden("no randomness"))?;
        *t = None;
        self.live.lock().unwrap().insert(sid.clone(), csrf.clone());
        Ok((sid, csrf))
    }

    /// The CSRF token of the session whose cookie the request carries.
    pub fn session(&self, headers: &HeaderMap) -> Result<String, Refusal> {
        let live = self.live.lock().unwrap();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .filter(|(k, _)| *k == COOKIE_NAME)
            .find_map(|(_, v)| live.iter().find(|(sid, _)| same_secret(sid, v)).map(|(_, csrf)| csrf.clone()))
            .ok_or(Refusal::NoSession)
    }
}

/// The `Set-Cookie` value for session `sid`.
pub fn cookie(sid: &str) -> String {
    format!("{COOKIE_NAME}={sid}; HttpOnly; SameSite=Strict; Path=/")
}

/// `Host` must be the listen address itself (`127.0.0.1:PORT`, `[::1]:PORT`): a page of
/// another site reaching this port through a name it controls (DNS rebinding) is refused.
pub fn check_host(headers: &HeaderMap, host: &str) -> Result<(), Refusal> {
    match headers.get(HOST).and_then(|v| v.to_str().ok()) {
        Some(h) if h.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(Refusal::Forbidden("the Host header is not this page's address")),
    }
}

/// A state-changing request must come from this page: `Origin` is its origin or, when a
/// browser sends no `Origin`, `Referer` is one of its pages; and it carries the session's
/// CSRF token (`given`, from the form field or the `X-CSRF-Token` header).
pub fn check_post(headers: &HeaderMap, origin: &str, csrf: &str, given: Option<&str>) -> Result<(), Refusal> {
    let header = |n| headers.get(n).and_then(|v: &hyper::header::HeaderValue| v.to_str().ok());
    let same_origin = match (header(ORIGIN), header(REFERER)) {
        (Some(o), _) => o == origin,
        (None, Some(r)) => r.strip_prefix(origin).is_some_and(|rest| rest.starts_with('/')),
        (None, None) => false,
    };
    if !same_origin {
        return Err(Refusal::Forbidden("this request does not come from this page (Origin)"));
    }
    match given {
        Some(g) if same_secret(csrf, g) => Ok(()),
        _ => Err(Refusal::Forbidden("this form is stale or forged (CSRF token); reload the page")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_token_works_once_and_the_cookie_finds_its_session() {
        let (s, token) = Sessions::new().unwrap();
        assert!(s.exchange("0").is_err());
        let (sid, csrf) = s.exchange(&token).unwrap();
        assert!(matches!(s.exchange(&token), Err(Refusal::Forbidden(_))));
        let h = headers(&[("cookie", &format!("a=b; {COOKIE_NAME}={sid}"))]);
        assert_eq!(s.session(&h), Ok(csrf));
        assert_eq!(s.session(&headers(&[("cookie", "peersync_ui=nope")])), Err(Refusal::NoSession));
        assert_eq!(s.session(&HeaderMap::new()), Err(Refusal::NoSession));
    }

    #[test]
    fn posts_need_the_origin_and_the_csrf_token() {
        let o = "http://127.0.0.1:9";
        let ok = headers(&[("origin", o)]);
        assert!(check_post(&ok, o, "abc", Some("abc")).is_ok());
        assert!(check_post(&ok, o, "abc", Some("abd")).is_err());
        assert!(check_post(&ok, o, "abc", None).is_err());
        assert!(check_post(&headers(&[("origin", "http://evil")]), o, "abc", Some("abc")).is_err());
        assert!(check_post(&headers(&[("origin", "null")]), o, "abc", Some("abc")).is_err());
        assert!(check_post(&headers(&[("referer", "http://127.0.0.1:9/status")]), o, "abc", Some("abc")).is_ok());
        assert!(check_post(&headers(&[("referer", "http://127.0.0.1:90/")]), o, "abc", Some("abc")).is_err());
        assert!(check_post(&HeaderMap::new(), o, "abc", Some("abc")).is_err());
        assert!(check_host(&headers(&[("host", "127.0.0.1:9")]), "127.0.0.1:9").is_ok());
        assert!(check_host(&headers(&[("host", "evil.example:9")]), "127.0.0.1:9").is_err());
    }
}
