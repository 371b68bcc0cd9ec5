//! Fixtures shared by the integration tests: a fresh database per test, and
//! the real `darkwatch-collector` binary (server and CLI).
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a new database on
//! the server named by `DARKWATCH_TEST_PG`, dropped afterwards; without that
//! variable PostgreSQL variants skip, unless `CI=true`, where they fail.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use darkwatch_netlab::announced_url;
use rand::RngCore;

pub const BIN: &str = env!("CARGO_BIN_EXE_darkwatch-collector");

/// A running `darkwatch-collector serve` on 127.0.0.1, killed on drop.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or `https://` with TLS), as the server
    /// announced it.
    pub base: String,
}

impl Server {
    /// `serve --db DB --listen 127.0.0.1:0 EXTRA...`, with `RUST_LOG=warn`.
    pub fn start(db: &str, extra: &[&str]) -> Server {
        Server::start_with(db, extra, &[])
    }

    /// Like [`Server::start`], with environment variables set after the
    /// defaults (so `RUST_LOG` can be overridden).
    pub fn start_with(db: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("DARKWATCH_DB")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn collector");
        // A generous guard against a hung start, not a timing assertion.
        let base = match announced_url(&mut child, Duration::from_secs(120)) {
            Ok(b) => b,
            Err(e) => {
                let _ = child.kill();
                panic!("{e}");
            }
        };
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `127.0.0.1:PORT`, for raw TCP clients.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// SIGKILL (a crash) and reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the collector");
        self.child.wait().expect("reap the collector");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the collector CLI against `db`.
pub fn cli(db: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("DARKWATCH_DB")
        .output()
        .expect("run collector CLI")
}

/// Like [`cli`], failing the test on a non-zero exit; returns stdout.
pub fn cli_ok(db: &str, args: &[&str]) -> String {
    let out = cli(db, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A database for one test; dropped databases are deleted.
pub struct Db {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// (server URL, database name) of a PostgreSQL database to drop.
    pg: Option<(String, String)>,
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("collector.sqlite").display());
        Db {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or None when the test should skip.
    pub async fn postgres() -> Option<Db> {
        let server = darkwatch_netlab::or_skip(
            "the PostgreSQL variant",
            std::env::var("DARKWATCH_TEST_PG").map_err(|_| "DARKWATCH_TEST_PG is not set"),
        )?;
        let name = format!("dw_test_{}", random_hex(6));
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&server)
            .await
            .expect("connect to DARKWATCH_TEST_PG");
        // Identifiers cannot be bound; the name is ours (hex), not input.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = reqwest::Url::parse(&server).expect("DARKWATCH_TEST_PG is a URL");
        url.set_path(&format!("/{name}"));
        Some(Db {
            url: url.to_string(),
            _dir: None,
            pg: Some((server, name)),
        })
    }
}

impl Db {
    /// Makes the database disappear under a running server (PostgreSQL
    /// only: a SQLite file stays usable through its open handles). Returns
    /// false for SQLite.
    pub async fn break_database(&self) -> bool {
        let Some((server, name)) = &self.pg else {
            return false;
        };
        let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(server)
            .await
            .expect("connect to server");
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .expect("drop database");
        true
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut c) =
                        <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await
                    {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Instantiates each async `fn(&str)` test body twice: `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::Db::sqlite();
                    super::$name(&db.url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::Db::postgres().await else { return };
                    super::$name(&db.url).await;
                }
            )*
        }
    };
}

/// One VP's plain observation of `block` in `round` of campaign "kp" (of
/// `interval_secs` rounds): up after one answered probe, or, when `dark`,
/// down after three silent ones.
pub fn kp_observation(
    round: u64,
    block: &str,
    dark: bool,
    interval_secs: u64,
) -> darkwatch_schema::BlockObservation {
    use darkwatch_schema::BlockState;
    darkwatch_schema::BlockObservation {
        campaign: "kp".into(),
        round,
        block: block.parse().expect("block"),
        state: if dark {
            BlockState::Down
        } else {
            BlockState::Up
        },
        probes: if dark { 3 } else { 1 },
        replies: u32::from(!dark),
        belief: if dark { 0.01 } else { 0.99 },
        availability: 1.0,
        control: false,
        rtt_min_ms: None,
        rtt_median_ms: None,
        ts_ms: darkwatch_schema::round_start_ms(round, interval_secs) + 1000,
    }
}

/// A batch of plain `observations` and nothing else, under a fresh id.
pub fn plain_batch(
    observations: Vec<darkwatch_schema::BlockObservation>,
) -> darkwatch_schema::ReportBatch {
    darkwatch_schema::ReportBatch {
        observations,
        ..darkwatch_schema::ReportBatch::new(random_hex(8), 0)
    }
}
