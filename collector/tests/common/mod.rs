//! Fixtures shared by the integration tests: a fresh database per test.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a new database on
//! the server named by `DARKWATCH_TEST_PG`, dropped afterwards; without that
//! variable PostgreSQL variants skip, unless `CI=true`, where they fail.

#![allow(dead_code)] // each test binary uses a different part

use rand::RngCore;

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
        let Ok(server) = std::env::var("DARKWATCH_TEST_PG") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but DARKWATCH_TEST_PG is not set: the PostgreSQL variant cannot run"
            );
            eprintln!("skipping PostgreSQL variant: DARKWATCH_TEST_PG is not set");
            return None;
        };
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
                    let db = super::common::Db::sqlite();
                    super::$name(&db.url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::common::Db::postgres().await else { return };
                    super::$name(&db.url).await;
                }
            )*
        }
    };
}
