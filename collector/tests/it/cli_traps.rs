//! The command line as a new operator meets it: commands that only read
//! never create a database and never exit 0 on a path where none exists.

use crate::common::cli;

#[test]
fn read_commands_refuse_a_missing_database_and_create_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("darkwatch.sqlite");
    let url = db.to_str().expect("utf-8 path");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["outages"],
        &["timeline"],
        &["signals", "--scope", "country", "--target", "KP"],
    ] {
        let out = cli(url, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(66), "{args:?}: {out:?}");
        assert!(err.contains("no database at"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}
