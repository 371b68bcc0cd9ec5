//! The agent's `/metrics` endpoint: a one-route axum app on the configured
//! address, so that HTTP parsing is a maintained server's job and not ours.
//! Connections are served by hyper directly rather than `axum::serve`, for
//! its header-read timeout: a scrape is small and quick, or it is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::{header, Method, StatusCode};
use axum::routing::get;
use axum::Router;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use super::Metrics;

/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Only GET /metrics; anything else is told where to look.
async fn elsewhere(method: Method) -> (StatusCode, &'static str) {
    if method == Method::GET {
        (StatusCode::NOT_FOUND, "not found: try /metrics\n")
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n")
    }
}

/// The app: the current metrics at `GET /metrics`.
pub(super) fn router(metrics: Arc<Metrics>) -> Router {
    let scrape = get(move || async move {
        (
            [(header::CONTENT_TYPE, darkwatch_exposition::CONTENT_TYPE)],
            metrics.render(),
        )
    })
    .fallback(elsewhere);
    Router::new().route("/metrics", scrape).fallback(elsewhere)
}

impl Metrics {
    /// Binds `metrics.listen` (if set) and serves `GET /metrics` on it until
    /// the runtime stops; returns the bound address. Binding errors are the
    /// caller's: a configured listener that cannot listen is a startup failure.
    pub fn listen(self: &Arc<Self>) -> Result<Option<SocketAddr>> {
        let Some(addr) = self.cfg.listen else {
            return Ok(None);
        };
        let std = std::net::TcpListener::bind(addr)
            .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
        std.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std)?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "serving metrics on http://{addr}/metrics");
        let app = router(self.clone());
        tokio::spawn(async move {
            loop {
                let Ok((conn, peer)) = listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let served = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(conn), service)
                        .await;
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "metrics request failed");
                    }
                });
            }
        });
        Ok(Some(addr))
    }
}
