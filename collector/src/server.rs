//! Runs the HTTP API: binds, serves (plain or TLS) and shuts down gracefully.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::api::{router, wall_clock_ms, AppState};
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
/// requests then get a grace period.
pub async fn serve<S: Store>(
    cfg: &ServeConfig,
    store: Arc<S>,
    on_listening: impl FnOnce(SocketAddr, bool),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = AppState {
        store,
        metrics: Arc::new(Metrics::default()),
        now_ms: wall_clock_ms,
    };
    let app = router(state, cfg.max_body);
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

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
