//! The one place that turns names and text into SQL: identifier and string-literal quoting.

/// `text` as a single-quoted SQL string literal (`'it''s'`); its spelling is the wire's (record ids).
pub use crate::wire::quote_literal;

/// `name` as a double-quoted SQL identifier (`"a""b"`), safe for any string.
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for ch in name.chars() {
        if ch == '"' {
            s.push('"');
        }
        s.push(ch);
    }
    s.push('"');
    s
}

/// `names` as a comma-separated list of quoted identifiers, each as `prefix` + the name.
pub fn quote_list<'a>(prefix: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    names.into_iter().map(|n| format!("{prefix}{}", quote_ident(n))).collect::<Vec<_>>().join(", ")
}

/// True for SQLite's internal tables and peersync's own (`sync_log`, `sync_stage_1`, ...).
pub fn is_reserved_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_")
        || lower.starts_with("sync_stage_")
        || super::schema::SYNC_TABLES.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quotes() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident("select"), r#""select""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_list("NEW.", &["a".to_string(), "b\"".to_string()]), r#"NEW."a", NEW."b""""#);
        assert!(is_reserved_table("SYNC_log"));
        assert!(is_reserved_table("sync_stage_3"));
        assert!(!is_reserved_table("loans"));
        assert!(!is_reserved_table("sync_history"));
    }
}
