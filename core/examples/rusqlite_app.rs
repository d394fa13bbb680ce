//! A rusqlite app that syncs with peersync: one call registers the `sync_*` functions on its
//! connection, then it tracks a table, writes, and exchanges changes with a second database
//! using nothing but those functions. `cargo run -p peersync-core --example rusqlite_app`.
use rusqlite::Connection;

fn open(name: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    peersync_core::register_functions(&conn)?; // the one call
    conn.execute_batch("create table notes(id text primary key, body text)")?;
    let device: String = conn.query_row("select sync_init()", [], |r| r.get(0))?;
    conn.query_row("select sync_track('notes')", [], |r| r.get::<_, i64>(0))?;
    println!("{name}: device {device}");
    Ok(conn)
}

/// Sends `from` what `to` lacks: `sync_changes(to's vector)` there, `sync_apply` here.
fn send(from: &Connection, to: &Connection) -> rusqlite::Result<String> {
    let vector: String = to.query_row("select sync_vector()", [], |r| r.get(0))?;
    let batch: String = from.query_row("select sync_changes(?1)", [&vector], |r| r.get(0))?;
    to.query_row("select sync_apply(?1)", [&batch], |r| r.get(0))
}

fn main() -> rusqlite::Result<()> {
    let laptop = open("laptop")?;
    let phone = open("phone")?;
    laptop.execute("insert into notes values ('n1', 'written on the laptop')", [])?;
    phone.execute("insert into notes values ('n2', 'written on the phone')", [])?;
    println!("laptop -> phone: {}", send(&laptop, &phone)?);
    println!("phone -> laptop: {}", send(&phone, &laptop)?);
    for conn in [&laptop, &phone] {
        let n: i64 = conn.query_row("select count(*) from notes", [], |r| r.get(0))?;
        assert_eq!(n, 2);
    }
    let status: String = laptop.query_row("select sync_status()", [], |r| r.get(0))?;
    println!("laptop status: {status}");
    Ok(())
}
