//! The conflict pages: the pending queue (filter by table), the edit form, the history, and
//! resolving (core's `resolve`, the same as `sync_resolve`, so the outcome spreads).
use super::html::{esc, field, page, shown, typed, Nav};
use super::Ui;
use crate::error::{Error, Result};
use peersync_core::{Conflict, ConflictContext};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// Device id → name, for every device this database knows.
fn names(c: &rusqlite::Connection) -> Result<HashMap<String, String>> {
    Ok(peersync_core::devices(c)?
        .into_iter()
        .map(|d| {
            let name = d.device_name.clone().unwrap_or_else(|| d.device_id.clone());
            (d.device_id, name)
        })
        .collect())
}

fn who(names: &HashMap<String, String>, id: Option<&str>) -> String {
    match id {
        Some(id) => format!(
            "<span class=\"device\" title=\"{}\">{}</span>",
            esc(id),
            esc(names.get(id).map(String::as_str).unwrap_or(id))
        ),
        None => "<span class=\"device\">no device</span>".into(),
    }
}

/// Most conflicts one page shows.
const MAX_SHOWN: usize = 200;

/// The pending queue, newest first; `table` keeps only that table's conflicts.
pub async fn pending(ui: &Ui, query: &str, csrf: &str) -> Result<String> {
    let q = super::html::form(query);
    let table = field(&q, "table").filter(|t| !t.is_empty()).map(str::to_string);
    let done = field(&q, "done").and_then(|d| d.parse::<i64>().ok());
    let want = table.clone();
    let (tables, total, list, names) = ui
        .db
        .run(move |c| {
            let all = peersync_core::conflicts(c, Some("pending"))?;
            let mut tables: Vec<String> = all.iter().map(|k| k.table_name.clone()).collect();
            tables.sort();
            tables.dedup();
            let mine: Vec<Conflict> =
                all.into_iter().filter(|k| want.as_deref().is_none_or(|t| k.table_name == t)).collect();
            let total = mine.len();
            let mut out = Vec::new();
            for k in mine.into_iter().take(MAX_SHOWN) {
                let ctx = peersync_core::conflict_context(c, &k)?;
                out.push((k, ctx));
            }
            Ok((tables, total, out, names(c)?))
        })
        .await?;
    let mut body = String::from("<h1>Conflicts waiting for you</h1>");
    if let Some(id) = done {
        body += &format!("<p class=\"notice\" role=\"status\">Conflict {id} is settled; the other devices learn it at their next sync.</p>");
    }
    body += "<form method=\"get\" action=\"/\" class=\"filter\"><label for=\"table\">Table</label> <select id=\"table\" name=\"table\"><option value=\"\">all tables</option>";
    for t in &tables {
        let sel = if table.as_deref() == Some(t.as_str()) { " selected" } else { "" };
        body += &format!("<option value=\"{0}\"{sel}>{0}</option>", esc(t));
    }
    body += "</select> <button type=\"submit\">Show</button></form>";
    if list.is_empty() {
        body += "<p>No conflict waits. When a table's strategy is <code>manual</code>, a write that meets another device's write to the same column waits here.</p>";
    }
    if total > list.len() {
        body += &format!("<p>Showing the newest {} of {total} conflicts.</p>", list.len());
    }
    for (k, ctx) in &list {
        body += &card(k, ctx, &names, csrf);
    }
    Ok(page("Conflicts", Nav::Conflicts, &body))
}

/// Columns of a side's data, in order; an object's keys (a deleted side has none).
fn keys(v: &Json) -> Vec<String> {
    v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// One pending conflict: both sides side by side, the buttons.
fn card(k: &Conflict, ctx: &ConflictContext, names: &HashMap<String, String>, csrf: &str) -> String {
    let id = k.id;
    let mut cols: Vec<String> = k.columns.clone();
    for c in keys(&k.local_data).into_iter().chain(keys(&k.remote_data)) {
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    let side_cell = |data: &Json, col: &str| match data {
        Json::Null => "<span class=\"gone\">deleted</span>".to_string(),
        Json::Object(m) => m.get(col).map(shown).unwrap_or_else(|| "<span class=\"gone\">—</span>".into()),
        other => shown(other),
    };
    let mut rows = String::new();
    for c in &cols {
        let (l, r) = (side_cell(&k.local_data, c), side_cell(&k.remote_data, c));
        let differs = k.columns.contains(c) || l != r;
        let (class, mark) =
            if differs { (" class=\"conflicting\"", "<span class=\"mark\">differs</span> ") } else { ("", "") };
        rows += &format!("<tr{class}><th scope=\"row\">{mark}{}</th><td>{l}</td><td>{r}</td></tr>", esc(c));
    }
    if let Some(cur) = &ctx.current {
        for (c, v) in cur.iter().filter(|(c, _)| !cols.contains(c)) {
            rows += &format!(
                "<tr class=\"context\"><th scope=\"row\">{}</th><td colspan=\"2\">{}</td></tr>",
                esc(c),
                shown(v)
            );
        }
    }
    let when =
        |t: &Option<String>| t.as_deref().map(|t| format!("wrote at <time>{}</time>", esc(t))).unwrap_or_default();
    let note = match k.resolution.get("error").and_then(Json::as_str) {
        Some(e) if k.kind == "constraint" => format!("<p class=\"why\">Refused here: {}</p>", esc(e)),
        _ => String::new(),
    };
    format!(
        "<article class=\"conflict\" id=\"c{id}\" aria-labelledby=\"h{id}\">\
<h2 id=\"h{id}\">{table} <span class=\"rid\">{rid}</span></h2>\
<p class=\"meta\">Conflict {id} · {kind} · seen <time>{created}</time></p>{note}\
<div class=\"scroll\"><table><caption class=\"sr\">Conflict {id}: this device's value and the other device's</caption>\
<thead><tr><th scope=\"col\">Column</th><th scope=\"col\">Mine: {lw} {lt}</th><th scope=\"col\">Theirs: {rw} {rt}</th></tr></thead>\
<tbody>{rows}</tbody></table></div>\
<form method=\"post\" action=\"/conflicts/{id}\" class=\"actions\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button name=\"choice\" value=\"local\">Keep mine</button> <button name=\"choice\" value=\"remote\">Take theirs</button> \
<button name=\"choice\" value=\"ignore\" class=\"quiet\">Ignore</button> \
<a href=\"/conflicts/{id}/edit?side=local\">Edit from mine</a> <a href=\"/conflicts/{id}/edit?side=remote\">Edit from theirs</a></form></article>",
        table = esc(&k.table_name),
        rid = esc(&k.record_id),
        kind = esc(&k.kind),
        created = esc(&k.created_at),
        lw = who(names, k.local_device_id.as_deref()),
        rw = who(names, k.remote_device_id.as_deref()),
        lt = when(&ctx.local_written_at),
        rt = when(&ctx.remote_written_at),
        csrf = esc(csrf),
    )
}

/// The values an edit starts from: the chosen side's, for the columns a resolution may set.
fn edit_values(k: &Conflict, ctx: &ConflictContext, remote: bool) -> Map<String, Json> {
    let (side, other) = if remote { (&k.remote_data, &k.local_data) } else { (&k.local_data, &k.remote_data) };
    let mut out = Map::new();
    let base = match (side, other) {
        (Json::Object(m), _) => m.clone(),
        (_, Json::Object(m)) => m.clone(),
        _ => ctx.current.clone().unwrap_or_default(),
    };
    for (c, v) in base {
        if k.kind != "update" || k.columns.contains(&c) {
            out.insert(c, v);
        }
    }
    out
}

const TYPES: [&str; 5] = ["integer", "real", "text", "null", "blob"];

/// The edit form, prefilled from one side.
pub async fn edit_form(ui: &Ui, id: i64, query: &str, csrf: &str) -> Result<String> {
    let remote = field(&super::html::form(query), "side") == Some("remote");
    let (k, ctx) = ui
        .db
        .run(move |c| {
            let k =
                peersync_core::conflict(c, id)?.ok_or_else(|| Error::NotFound(format!("no conflict with id {id}")))?;
            let ctx = peersync_core::conflict_context(c, &k)?;
            Ok((k, ctx))
        })
        .await?;
    if k.status != "pending" {
        return Err(Error::BadRequest(format!("conflict {id} is already {}", k.status)));
    }
    let mut fields = String::new();
    for (i, (col, v)) in edit_values(&k, &ctx, remote).iter().enumerate() {
        let (ty, text) = typed(v);
        let opts: String =
            TYPES.iter().map(|t| format!("<option{}>{t}</option>", if *t == ty { " selected" } else { "" })).collect();
        let hint = if ty == "blob" {
            format!(" <span class=\"hint\">({}, as hex)</span>", super::html::bytes(text.len() / 2))
        } else {
            String::new()
        };
        fields += &format!(
            "<fieldset><legend>{c}</legend><input type=\"hidden\" name=\"n{i}\" value=\"{c}\">\
<label for=\"t{i}\">Type</label> <select id=\"t{i}\" name=\"t{i}\">{opts}</select>\
<label for=\"v{i}\">Value{hint}</label><textarea id=\"v{i}\" name=\"v{i}\" rows=\"2\">{t}</textarea></fieldset>",
            c = esc(col),
            t = esc(&text),
        );
    }
    let body = format!(
        "<h1>Edit conflict {id}</h1><p>{table} <span class=\"rid\">{rid}</span>, starting from {side} values. \
Type NULL by choosing the type <code>null</code>; a blob is hex.</p>\
<form method=\"post\" action=\"/conflicts/{id}/edit\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{fields}\
<button type=\"submit\">Save this value</button> <a href=\"/#c{id}\">Back</a></form>",
        table = esc(&k.table_name),
        rid = esc(&k.record_id),
        side = if remote { "their" } else { "my" },
        csrf = esc(csrf),
    );
    Ok(page(&format!("Edit conflict {id}"), Nav::Conflicts, &body))
}

/// A typed form value as core's JSON value encoding.
pub fn value(ty: &str, text: &str, col: &str) -> Result<Json> {
    let bad = |what: &str| Error::BadRequest(format!("column \"{}\": {what}", peersync_core::shown(col)));
    Ok(match ty {
        "null" => Json::Null,
        "integer" => Json::from(text.trim().parse::<i64>().map_err(|_| bad("not an integer"))?),
        "real" => {
            let f = text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| bad("not a finite real number"))?;
            serde_json::Number::from_f64(f).map(Json::Number).ok_or_else(|| bad("not a real number"))?
        }
        // Browsers send a textarea's line ends as CRLF.
        "text" => Json::String(text.replace("\r\n", "\n")),
        "blob" => {
            let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let b = hex::decode(&hex).map_err(|_| bad("a blob is written as hex digits, two per byte"))?;
            serde_json::json!({ "$blob": hex::encode(b) })
        }
        _ => return Err(bad("unknown type")),
    })
}

/// Settles conflict `id` with `choice` (local, remote, ignore, or a row).
async fn settle(ui: &Ui, id: i64, choice: String) -> Result<String> {
    let choice = peersync_core::Choice::parse(&choice)?;
    ui.db
        .run(move |c| {
            if peersync_core::conflict(c, id)?.is_none() {
                return Err(Error::NotFound(format!("no conflict with id {id}")));
            }
            Ok(peersync_core::resolve(c, id, choice)?)
        })
        .await
}

/// POST /conflicts/{id}: a button.
pub async fn resolve(ui: &Ui, id: i64, fields: &[(String, String)]) -> Result<()> {
    let choice = match field(fields, "choice") {
        Some(c @ ("local" | "remote" | "ignore")) => c.to_string(),
        _ => return Err(Error::BadRequest("choice must be local, remote or ignore".into())),
    };
    let status = settle(ui, id, choice.clone()).await?;
    tracing::info!(conflict = id, %choice, %status, "conflict settled on the page");
    Ok(())
}

/// POST /conflicts/{id}/edit: the edit form's values.
pub async fn resolve_edited(ui: &Ui, id: i64, fields: &[(String, String)]) -> Result<()> {
    let mut row = Map::new();
    for i in 0.. {
        let Some(col) = field(fields, &format!("n{i}")) else { break };
        let ty = field(fields, &format!("t{i}")).unwrap_or("text");
        let text = field(fields, &format!("v{i}")).unwrap_or("");
        row.insert(col.to_string(), value(ty, text, col)?);
    }
    if row.is_empty() {
        return Err(Error::BadRequest("the form has no column".into()));
    }
    settle(ui, id, Json::Object(row).to_string()).await?;
    tracing::info!(conflict = id, "conflict settled on the page with edited values");
    Ok(())
}

/// Resolved and ignored conflicts, newest first, with who settled them where and when.
pub async fn history(ui: &Ui) -> Result<String> {
    let (list, names) = ui
        .db
        .run(|c| {
            let mut v = peersync_core::conflicts(c, None)?;
            v.retain(|k| k.status != "pending");
            v.truncate(500);
            Ok((v, names(c)?))
        })
        .await?;
    let mut rows = String::new();
    for k in &list {
        let r = &k.resolution;
        let reference = r.get("change").or_else(|| r.get("closed_by")).and_then(Json::as_str);
        let by = reference.and_then(peersync_core::parse_reference).map(|(d, _)| d);
        let how = match (r.get("choice").and_then(Json::as_str), r.get("strategy").and_then(Json::as_str)) {
            (Some("row"), _) => "edited value".to_string(),
            (Some("local"), _) => "kept that device's value".to_string(),
            (Some("remote"), _) => "took the other side".to_string(),
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!(
                "automatically ({s}{})",
                r.get("winner").and_then(Json::as_str).map(|w| format!(", {w} won")).unwrap_or_default()
            ),
            (None, None) if r.get("closed_by").is_some() => "settled on another device".into(),
            _ => "—".into(),
        };
        let device = match by {
            Some(d) => who(&names, Some(d)),
            None => "—".into(),
        };
        rows += &format!(
            "<tr><td>{id}</td><td>{t}</td><td class=\"rid\">{rid}</td><td>{st}</td><td>{how}</td><td>{device}</td><td><time>{at}</time></td></tr>",
            id = k.id,
            t = esc(&k.table_name),
            rid = esc(&k.record_id),
            st = esc(&k.status),
            how = esc(&how),
            at = esc(k.resolved_at.as_deref().unwrap_or("")),
        );
    }
    let body = if list.is_empty() {
        "<h1>History</h1><p>No conflict has been settled yet.</p>".to_string()
    } else {
        format!("<h1>History</h1><p>Settled and ignored conflicts, newest first. <em>On device</em> is the device whose resolution settled it.</p>\
<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Table</th><th scope=\"col\">Record</th><th scope=\"col\">Status</th><th scope=\"col\">How</th><th scope=\"col\">On device</th><th scope=\"col\">When</th></tr></thead><tbody>{rows}</tbody></table></div>")
    };
    Ok(page("History", Nav::History, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_keep_their_types() {
        assert_eq!(value("integer", " 42 ", "n").unwrap(), serde_json::json!(42));
        assert!(value("integer", "4.2", "n").is_err());
        assert_eq!(value("real", "2", "n").unwrap().to_string(), "2.0");
        assert!(value("real", "inf", "n").is_err());
        assert_eq!(value("text", "a\r\nb", "n").unwrap(), serde_json::json!("a\nb"));
        assert_eq!(value("null", "x", "n").unwrap(), Json::Null);
        assert_eq!(value("blob", "00 FF", "n").unwrap(), serde_json::json!({"$blob": "00ff"}));
        assert!(value("blob", "0g", "n").is_err());
    }
}
