//! The SQL connection of the store: [`SqlStore`] (the pool, the backend,
//! the SQLite group writer's queue) and the few helpers every topic module
//! uses. It is the bottom of `store/`: the topic modules (`agents`,
//! `observations`, `rounds`, `census`, ...) take a `&SqlStore` and hold the
//! SQL of their tables; `dispatch` opens the store and maps the [`Store`]
//! trait onto them. Nothing here calls back into those modules, so the
//! modules form layers, not a loop.
//!
//! Every value goes through a bound `$n` parameter; SQLite accepts `$n` too.
//! SQLite runs in WAL mode with `synchronous=FULL`: an acknowledged report
//! survives a power cut.
//!
//! [`Store`]: super::Store

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use darkwatch_schema::{BatchAck, ReportBatch};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::codec::to_u64;
use super::url::Backend;
use super::StoreError;

/// The SQLite/PostgreSQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// The SQLite group-commit writer (None for PostgreSQL).
    pub(super) writer: Option<mpsc::Sender<IngestJob>>,
    /// Last `last_seen_ms` written per agent.
    pub(super) touched: Arc<Mutex<HashMap<String, i64>>>,
    /// PostgreSQL: the day (by the database's clock) whose partitions
    /// retention last made sure of (`partitions`).
    pub(super) partitions_day: Arc<AtomicI64>,
}

/// A batch handed to the SQLite writer (`ingest::group_writer`), with where
/// to send its ack.
pub(super) struct IngestJob {
    pub(super) agent: String,
    pub(super) batch: ReportBatch,
    pub(super) now_ms: i64,
    pub(super) reply: oneshot::Sender<Result<BatchAck, StoreError>>,
}

impl SqlStore {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One `COUNT`-like scalar, with at most one bound value.
    pub(super) async fn count(&self, sql: &str, bind: Option<i64>) -> Result<u64, StoreError> {
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        to_u64(q.fetch_one(&self.pool).await?, "count")
    }
}
