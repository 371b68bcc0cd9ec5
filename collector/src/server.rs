//! Runs the HTTP API: binds, serves (plain or TLS) and shuts down gracefully.
//!
//! Every request gets a deadline (`DARKWATCH_REQUEST_TIMEOUT_SECS`, default
//! 30 s) covering its body upload and handling: a client that stalls or
//! dribbles its body gets 408 and its connection is closed, so slow clients
//! cannot pin the collector's resources.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::{router, AppState};
use crate::clock::SharedClock;
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load TLS certificate/key: {0}")]
    Tls(String),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds `cfg.listen`, calls `on_listening` with the bound address (port 0
/// picks a free port), and serves until `shutdown` completes; in-flight
/// requests then get a grace period. `metrics` are the process counters
/// (shared with the correlation loop, which counts its caught panics);
/// `names` name the scopes the API shows (shared with the alerts).
pub async fn serve<S: Store + crate::bgp::read::BgpRows>(
    cfg: &ServeConfig,
    store: Arc<S>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    names: crate::names::Names,
    on_listening: impl FnOnce(SocketAddr, bool),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = AppState {
        store,
        metrics,
        clock,
        correlation: Arc::new(cfg.correlation.clone()),
        names,
    };
    let app = router(state, cfg.max_body).layer(middleware::from_fn_with_state(
        request_timeout(),
        request_deadline,
    ));
    let std_listener = TcpListener::bind(cfg.listen).map_err(|source| ServeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;

    match &cfg.tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            on_listening(addr, false);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some((cert, key)) => {
            // reqwest links ring and axum-server aws-lc-rs; with two providers
            // compiled in, rustls needs to be told which one to use.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    ServeError::Tls(format!("{} / {}: {e}", cert.display(), key.display()))
                })?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            on_listening(addr, true);
            axum_server::from_tcp_rustls(std_listener, tls)
                .handle(handle)
                .serve(app.into_make_service())
                .await?;
        }
    }
    Ok(())
}

/// Default per-request deadline.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The request deadline: `DARKWATCH_REQUEST_TIMEOUT_SECS` if set to a
/// positive number of seconds, else [`DEFAULT_REQUEST_TIMEOUT`].
pub fn request_timeout() -> Duration {
    parse_timeout(
        std::env::var("DARKWATCH_REQUEST_TIMEOUT_SECS")
            .ok()
            .as_deref(),
    )
}

fn parse_timeout(v: Option<&str>) -> Duration {
    v.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs_f64)
}

/// Answers 408 when a request (body upload included) outlives `limit`.
async fn request_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                timeout_secs = limit.as_secs_f64(),
                "request timed out (slow or stalled client)"
            );
            let mut resp = (
                StatusCode::REQUEST_TIMEOUT,
                Json(darkwatch_schema::ApiError {
                    error: format!(
                        "request not completed within {} s (slow or stalled upload)",
                        limit.as_secs_f64()
                    ),
                    code: None,
                }),
            )
                .into_response();
            // The body was not read to its end: the connection cannot be reused.
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            resp
        }
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives
/// between "listening" and the server's first poll still shuts down cleanly.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &'static str| {
        let s = signal(kind);
        if let Err(e) = &s {
            tracing::error!(error = %e, "cannot listen for {name}");
        }
        s.ok()
    };
    let int = listen(SignalKind::interrupt(), "SIGINT");
    let term = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => {},
            _ = wait(term) => {},
        }
        tracing::info!("shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_setting() {
        assert_eq!(parse_timeout(None), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(parse_timeout(Some("2")), Duration::from_secs(2));
        assert_eq!(parse_timeout(Some("0.5")), Duration::from_millis(500));
        for bad in ["0", "-3", "soon", "NaN", "inf", "1e9"] {
            assert_eq!(parse_timeout(Some(bad)), DEFAULT_REQUEST_TIMEOUT, "{bad}");
        }
    }
}
