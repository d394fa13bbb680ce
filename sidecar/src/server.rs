//! The HTTP server: accept loop with fair connection slots (per source, and silent connections
//! give way to new ones), header read timeout (slow clients), graceful shutdown that lets
//! requests in flight finish.
use crate::routes::{self, AppState};
use crate::shutdown::Shutdown;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most connections from one source address at once.
    pub per_source: usize,
    /// A client must send its request headers within this time (slowloris).
    pub header_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub grace: Duration,
}

/// The connections being served. A connection that has not yet carried a request signed by a
/// trusted device is *silent*; when slots run out, the oldest silent connection of the source
/// holding the most of them is closed to make room, so connections that never authenticate
/// cannot keep a trusted peer out.
#[derive(Default)]
struct Slots {
    next: u64,
    open: HashMap<u64, Slot>,
}

struct Slot {
    ip: IpAddr,
    since: Instant,
    trusted: Arc<AtomicBool>,
    close: Option<oneshot::Sender<()>>,
}

impl Slots {
    /// Makes room for a connection from `ip`, if it can be had; returns its slot id and its
    /// trusted flag, or None when every slot serves trusted devices (or `ip` has its share).
    fn admit(
        &mut self,
        ip: IpAddr,
        limits: &ServerLimits,
        close: oneshot::Sender<()>,
    ) -> Option<(u64, Arc<AtomicBool>)> {
        // Connections being closed to make room are on their way out: they do not count.
        let live = |s: &Slot| s.close.is_some();
        let from_ip = self.open.values().filter(|s| live(s) && s.ip == ip).count();
        if from_ip >= limits.per_source && !self.evict(Some(ip)) {
            return None;
        }
        if self.open.values().filter(|s| live(s)).count() >= limits.max_connections && !self.evict(None) {
            return None;
        }
        let id = self.next;
        self.next += 1;
        let trusted = Arc::new(AtomicBool::new(false));
        self.open.insert(id, Slot { ip, since: Instant::now(), trusted: trusted.clone(), close: Some(close) });
        Some((id, trusted))
    }

    /// Closes the oldest silent connection (of `ip`, or of the source with the most silent ones).
    fn evict(&mut self, ip: Option<IpAddr>) -> bool {
        let silent = |s: &Slot| !s.trusted.load(Ordering::Relaxed) && s.close.is_some();
        let ip = match ip {
            Some(ip) => ip,
            None => {
                let mut per: HashMap<IpAddr, usize> = HashMap::new();
                for s in self.open.values().filter(|s| silent(s)) {
                    *per.entry(s.ip).or_default() += 1;
                }
                match per.into_iter().max_by_key(|(_, n)| *n) {
                    Some((ip, _)) => ip,
                    None => return false,
                }
            }
        };
        let victim =
            self.open.iter().filter(|(_, s)| s.ip == ip && silent(s)).min_by_key(|(_, s)| s.since).map(|(id, _)| *id);
        match victim.and_then(|id| self.open.get_mut(&id)) {
            Some(s) => {
                if let Some(close) = s.close.take() {
                    let _ = close.send(());
                }
                true
            }
            None => false,
        }
    }
}

/// The next connection on `listener`, or None once `shutdown` triggers. A failed accept (out
/// of file descriptors and the like) is logged as `what`, and retried a little later: a
/// server never dies of it.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &Shutdown,
    what: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(error = %e, "{what}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.wait() => return None,
        }
    }
}

/// Serves until `shutdown` triggers, then finishes the requests in flight (up to `grace`).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, limits: ServerLimits, shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Mutex::new(Slots::default()));
    loop {
        let Some((stream, peer)) = accept(&listener, &shutdown, "accept failed").await else { break };
        let (close_tx, close_rx) = oneshot::channel();
        let Some((id, trusted)) = slots.lock().unwrap().admit(peer.ip(), &limits, close_tx) else {
            // Counted in /metrics (errors, kind connection_refused); logged only at debug, as a
            // flood of connections would flood the log.
            state.metrics.error("connection_refused");
            tracing::debug!(%peer, "no connection slot free (all serve trusted devices, or this source has its share)");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let flag = trusted.clone();
        let svc = service_fn(move |req| {
            let (st, flag) = (st.clone(), flag.clone());
            async move { Ok::<_, Infallible>(routes::handle(st, peer, req, &flag).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(routes::MAX_HEADER_BYTES)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        let slots = slots.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                },
                _ = close_rx => tracing::debug!(%peer, "silent connection closed to make room"),
            }
            slots.lock().unwrap().open.remove(&id);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(limits.grace) => tracing::warn!("requests still running after {} s; stopping anyway", limits.grace.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per: usize) -> ServerLimits {
        ServerLimits {
            max_connections: max,
            per_source: per,
            header_timeout: Duration::from_secs(1),
            grace: Duration::ZERO,
        }
    }

    #[test]
    fn silent_connections_give_way_and_sources_keep_to_their_share() {
        let l = limits(3, 2);
        let mut s = Slots::default();
        let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
        let mut closed = Vec::new();
        let admit = |s: &mut Slots, closed: &mut Vec<oneshot::Receiver<()>>, n: u8| {
            let (tx, rx) = oneshot::channel();
            closed.push(rx);
            s.admit(ip(n), &l, tx)
        };
        let (_, t1) = admit(&mut s, &mut closed, 1).unwrap();
        admit(&mut s, &mut closed, 2).unwrap();
        admit(&mut s, &mut closed, 2).unwrap();
        // Source 2 has its share: a third connection from it replaces its oldest.
        assert!(admit(&mut s, &mut closed, 2).is_some());
        assert!(closed[1].try_recv().is_ok(), "2's oldest silent connection was closed");
        // Trusted connections are never closed to make room.
        t1.store(true, Ordering::Relaxed);
        for (_, slot) in s.open.iter_mut().filter(|(_, x)| x.ip == ip(2)) {
            slot.trusted.store(true, Ordering::Relaxed);
        }
        s.open.retain(|_, x| x.close.is_some());
        assert!(admit(&mut s, &mut closed, 3).is_none(), "every slot serves a trusted device");
    }
}
