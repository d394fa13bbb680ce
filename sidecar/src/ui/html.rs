//! HTML pieces: the one escaping function every database value goes through, the page frame,
//! how a value is shown, and reading urlencoded forms.
use serde_json::Value as Json;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const FRAME: &str = include_str!("../../ui/frame.html");

/// Which page of the nav is current.
#[derive(Clone, Copy, PartialEq)]
pub enum Nav {
    Conflicts,
    History,
    Status,
    None,
}

/// A whole page: `title` (escaped here) and `body` (already HTML).
pub fn page(title: &str, nav: Nav, body: &str) -> String {
    let link = |n: Nav, href: &str, label: &str| {
        let current = if n == nav { " aria-current=\"page\"" } else { "" };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    let nav_html = [
        link(Nav::Conflicts, "/", "Conflicts"),
        link(Nav::History, "/history", "History"),
        link(Nav::Status, "/status", "Status"),
    ]
    .join("");
    FRAME.replace("{{title}}", &esc(title)).replace("{{nav}}", &nav_html).replace("{{body}}", body)
}

/// A value's type (integer, real, text, null, blob) and its text as a form holds it (blobs
/// as hex).
pub fn typed(v: &Json) -> (&'static str, String) {
    match v {
        Json::Null => ("null", String::new()),
        Json::Number(n) if n.is_i64() || n.is_u64() => ("integer", n.to_string()),
        Json::Number(n) => ("real", n.to_string()),
        Json::String(s) => ("text", s.clone()),
        Json::Bool(b) => ("integer", if *b { "1".into() } else { "0".into() }),
        Json::Object(m) => match (m.get("$blob").and_then(Json::as_str), m.get("$real").and_then(Json::as_str)) {
            (Some(h), _) => ("blob", h.to_string()),
            (_, Some(r)) => ("real", r.to_string()),
            _ => ("text", v.to_string()),
        },
        Json::Array(_) => ("text", v.to_string()),
    }
}

/// A value shown in a cell: NULL marked, blobs as size and hex, text as is (all escaped).
pub fn shown(v: &Json) -> String {
    match typed(v) {
        ("null", _) => "<span class=\"null\">NULL</span>".into(),
        ("blob", h) => format!("<span class=\"type\">blob, {}</span> <code>{}</code>", bytes(h.len() / 2), esc(&h)),
        ("text", s) => format!("<span class=\"text\">{}</span>", esc(&s)),
        (t, s) => format!("<span class=\"{t}\">{}</span>", esc(&s)),
    }
}

/// `n bytes`, `1 byte`.
pub fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// The fields of an `application/x-www-form-urlencoded` body or query string, in order.
pub fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first field named `name`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        assert!(shown(&Json::String("<script>".into())).contains("&lt;script&gt;"));
    }

    #[test]
    fn reads_forms() {
        let f = form("a=1+2&b=%3C%C3%A9%3E&c=%zz&d=%4");
        assert_eq!(field(&f, "a"), Some("1 2"));
        assert_eq!(field(&f, "b"), Some("<é>"));
        assert_eq!(field(&f, "c"), Some("%zz"));
        assert_eq!(field(&f, "d"), Some("%4"));
    }

    #[test]
    fn types_values() {
        assert_eq!(typed(&serde_json::json!(3)).0, "integer");
        assert_eq!(typed(&serde_json::json!(3.5)).0, "real");
        assert_eq!(typed(&serde_json::json!({"$blob": "00ff"})), ("blob", "00ff".into()));
    }
}
