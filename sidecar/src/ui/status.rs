//! The status page: this device, each link and peer device (state, since when, what it lacks,
//! held changes), quarantined and revoked devices, the last error; its live part is also what
//! the server-sent events carry.
use super::html::{esc, page, Nav};
use super::Ui;
use crate::error::Result;
use serde_json::Value as Json;

fn s<'a>(v: &'a Json, k: &str) -> &'a str {
    v.get(k).and_then(Json::as_str).unwrap_or("")
}

fn t(v: &Json, k: &str) -> String {
    match v.get(k).and_then(Json::as_str) {
        Some(x) => format!("<time>{}</time>", esc(x)),
        None => "never".into(),
    }
}

/// The live part of the page, as HTML (every value escaped).
pub async fn live(ui: &Ui) -> Result<String> {
    let (st, devices) = ui.db.run(|c| Ok((peersync_core::status(c)?, peersync_core::devices(c)?))).await?;
    let name_of = |id: &str| {
        devices.iter().find(|d| d.device_id == id).and_then(|d| d.device_name.clone()).unwrap_or_else(|| id.to_string())
    };
    let me = s(&st, "device_id");
    let log = st.get("log").cloned().unwrap_or_default();
    let mut h = format!(
        "<h2>This device</h2><dl class=\"facts\"><dt>Name</dt><dd>{}</dd><dt>Device id</dt><dd><code>{}</code></dd>\
<dt>Changes written here</dt><dd>{}</dd><dt>Not yet sent to any peer</dt><dd>{}</dd><dt>Conflicts waiting</dt><dd><a href=\"/\">{}</a></dd></dl>",
        esc(&name_of(me)),
        esc(me),
        log.get("own_version").and_then(Json::as_i64).unwrap_or(0),
        log.get("unsynced").and_then(Json::as_i64).unwrap_or(0),
        st.get("conflicts_pending").and_then(Json::as_i64).unwrap_or(0),
    );
    let mut last_error: Option<(String, String, String)> = None;
    let mut note_error = |who: String, msg: &str, at: &str| {
        if !msg.is_empty() && last_error.as_ref().is_none_or(|(_, _, t)| at > t.as_str()) {
            last_error = Some((who, msg.to_string(), at.to_string()));
        }
    };
    h += "<h2>Peers</h2>";
    let links = st.get("links").and_then(Json::as_array).cloned().unwrap_or_default();
    if links.is_empty() {
        h += "<p>No peer configured. Add one with <code>peersync peers add URL</code> or pair a device.</p>";
    } else {
        h += "<ul class=\"peers\">";
        for l in &links {
            let dev = s(l, "device_id");
            let lacks = l.get("lacks").and_then(Json::as_i64);
            let (class, state) = if s(l, "state") == "failing" {
                (
                    "failing",
                    format!(
                        "failing since {} ({} tries): {}",
                        t(l, "failing_since"),
                        l.get("failures").and_then(Json::as_i64).unwrap_or(0),
                        esc(s(l, "last_error"))
                    ),
                )
            } else if lacks.unwrap_or(0) > 0 {
                ("syncing", format!("syncing: it lacks {} of this device's changes", lacks.unwrap_or(0)))
            } else if l.get("last_success_at").is_some_and(|x| !x.is_null()) {
                ("ok", "up to date".to_string())
            } else {
                ("syncing", "not synced yet".to_string())
            };
            note_error(format!("peer {}", s(l, "url")), s(l, "last_error"), s(l, "last_error_at"));
            let held: Vec<String> = l
                .get("held_there")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            format!(
                                "<li>{} v{}: {}</li>",
                                esc(&name_of(s(x, "device_id"))),
                                x.get("version").and_then(Json::as_i64).unwrap_or(0),
                                esc(s(x, "detail"))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            h += &format!(
                "<li class=\"peer {class}\"><strong>{name}</strong> <code>{url}</code><br><span class=\"state\">{state}</span><br>last synced {last}{held}</li>",
                name = esc(&if dev.is_empty() { "unknown device".to_string() } else { name_of(dev) }),
                url = esc(s(l, "url")),
                last = t(l, "last_success_at"),
                held = if held.is_empty() { String::new() } else { format!("<p>It holds back these changes:</p><ul>{}</ul>", held.join("")) },
            );
        }
        h += "</ul>";
    }
    h += "<h2>Devices</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Standing</th><th scope=\"col\">Last sync</th><th scope=\"col\">Lacks</th></tr></thead><tbody>";
    for p in st.get("peers").and_then(Json::as_array).into_iter().flatten() {
        let id = s(p, "device_id");
        let dev = devices.iter().find(|d| d.device_id == id);
        let standing = if let Some(by) = p.get("revoked_by").and_then(Json::as_str) {
            format!("revoked by {}", esc(&name_of(by)))
        } else if let Some(q) = dev.and_then(|d| d.quarantined.as_deref()) {
            format!("quarantined: {}", esc(q))
        } else if p.get("authorized").and_then(Json::as_bool) == Some(true) {
            "trusted".into()
        } else {
            "not trusted".into()
        };
        note_error(format!("device {}", name_of(id)), s(p, "last_error"), s(p, "last_error_at"));
        h += &format!(
            "<tr><td>{} <code class=\"id\">{}</code></td><td>{standing}</td><td>{}</td><td>{}</td></tr>",
            esc(&name_of(id)),
            esc(id),
            t(p, "last_sync_at"),
            p.get("lacks").and_then(Json::as_i64).map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
        );
    }
    h += "</tbody></table></div>";
    let quarantined = st.get("quarantined").and_then(Json::as_array).cloned().unwrap_or_default();
    if !quarantined.is_empty() {
        h += "<h2>Quarantined</h2><ul>";
        for q in &quarantined {
            h += &format!(
                "<li>{} since {}: {}</li>",
                esc(&name_of(s(q, "device_id"))),
                t(q, "detected_at"),
                esc(s(q, "reason"))
            );
        }
        h += "</ul>";
    }
    let waiting = st.get("waiting").and_then(Json::as_array).cloned().unwrap_or_default();
    if !waiting.is_empty() {
        h += "<h2>Changes held here</h2><ul>";
        for w in &waiting {
            h += &format!(
                "<li>{} v{} (offered by {}), since {}: {}</li>",
                esc(&name_of(s(w, "origin"))),
                w.get("version").and_then(Json::as_i64).unwrap_or(0),
                esc(&name_of(s(w, "offered_by"))),
                t(w, "first_seen"),
                esc(s(w, "detail"))
            );
        }
        h += "</ul>";
    }
    h += "<h2>Last error</h2>";
    h += &match last_error {
        Some((who, msg, at)) => format!("<p>{} at <time>{}</time>: {}</p>", esc(&who), esc(&at), esc(&msg)),
        None => "<p>None.</p>".into(),
    };
    Ok(h)
}

/// The whole status page.
pub async fn page_html(ui: &Ui, csrf: &str, query: &str) -> Result<String> {
    let live = live(ui).await?;
    let asked = super::html::field(&super::html::form(query), "synced").is_some();
    let body = format!(
        "<h1>Status</h1><form method=\"post\" action=\"/sync\" id=\"sync-now\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">Sync now</button> <span id=\"sync-said\" role=\"status\">{said}</span></form>\
<section id=\"live\" aria-live=\"polite\">{live}</section>",
        csrf = esc(csrf),
        said = if asked { "Sync started." } else { "" },
    );
    Ok(page("Status", Nav::Status, &body))
}
