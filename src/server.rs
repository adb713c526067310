//! Serving an axum router the way every amsplay server needs it served: a header-read timeout
//! (which is also the idle timeout of a kept-alive connection, since hyper starts it whenever
//! it waits for the next request), a cap on open connections (below the file limit, so
//! half-sent requests cannot starve real ones), and graceful shutdown.
//!
//! A handler that panics answers 500 and the panic is logged as one line (never a backtrace per
//! request); the connection and the server live on.
//!
//! The emulator (with its origin), the front door and the fault points' control all go through
//! `serve`; `axum::serve` has neither limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// What one connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's headers, the first request's or the next one's.
    pub header_read: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            max_connections: default_max_connections(),
        }
    }
}

/// 1,024, or half the process's file limit when that is lower (the rest is for storage
/// connections, the database and logs).
fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        1024
    };
    (files / 2).clamp(16, 1024)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish (for
/// at most five seconds).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    log_panics_in_one_line();
    let app = app.layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of files or similar: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}

/// The answer to a request whose handler panicked.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        [("cache-control", "no-store")],
        "internal error; it has been logged\n",
    )
        .into_response()
}

/// Panics go to the log as one line: what and where.
fn log_panics_in_one_line() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if tracing::dispatcher::has_been_set() {
                tracing::error!(%at, "panic: {what}");
            } else {
                eprintln!("panic at {at}: {what}");
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        String::from_utf8_lossy(&raw)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_lives_on() {
        let app = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async { panic!("boom") as &str }),
            )
            .route("/ok", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, Limits::default(), async {
            let _ = stopped.await;
        }));
        for _ in 0..3 {
            assert_eq!(get(addr, "/boom").await, Some(500), "answered, not dropped");
        }
        assert_eq!(get(addr, "/ok").await, Some(200));
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
