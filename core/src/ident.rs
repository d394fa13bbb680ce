//! The one place that turns names and text into SQL: identifier and string-literal quoting.

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

/// `text` as a single-quoted SQL string literal (`'it''s'`).
pub fn quote_literal(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('\'');
    for ch in text.chars() {
        if ch == '\'' {
            s.push('\'');
        }
        s.push(ch);
    }
    s.push('\'');
    s
}

/// True for SQLite's internal tables and peersync's own (`sync_log`, `sync_stage_1`, ...).
pub fn is_reserved_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_")
        || lower.starts_with("sync_stage_")
        || crate::schema::SYNC_TABLES.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quotes() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident("select"), r#""select""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert!(is_reserved_table("SYNC_log"));
        assert!(is_reserved_table("sync_stage_3"));
        assert!(!is_reserved_table("loans"));
        assert!(!is_reserved_table("sync_history"));
    }
}

/// `text` as shown in an error message: a hostile 10,000-character name is cut, not echoed.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
    }
}
