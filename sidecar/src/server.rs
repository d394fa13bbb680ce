//! The HTTP server: accept loop with a connection limit, header read timeout (slow clients), graceful shutdown that lets requests in flight finish.
use crate::routes::{self, AppState};
use crate::shutdown::Shutdown;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub max_connections: usize,
    /// A client must send its request headers within this time (slowloris).
    pub header_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub grace: Duration,
}

/// Serves until `shutdown` triggers, then finishes the requests in flight (up to `grace`).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, limits: ServerLimits, shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // Waiting for a free slot first leaves extra connections in the kernel's backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not die.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let svc = service_fn(move |req| {
            let st = st.clone();
            async move { Ok::<_, Infallible>(routes::handle(st, peer, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(limits.grace) => tracing::warn!("requests still running after {} s; stopping anyway", limits.grace.as_secs()),
    }
}
