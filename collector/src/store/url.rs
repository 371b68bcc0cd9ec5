//! Which database a URL names: the operator types a path, `sqlite://PATH`
//! or `postgres://...`; this turns it into a backend and a sqlx URL.

use super::StoreError;

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Turns what the operator typed into a backend and a sqlx URL.
/// A plain path (or `sqlite://path`) is a SQLite file, created if missing.
pub fn resolve_url(input: &str) -> Result<(Backend, String), StoreError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(StoreError::Url(input.to_string()));
    }
    if input.starts_with("postgres://") || input.starts_with("postgresql://") {
        return Ok((Backend::Postgres, input.to_string()));
    }
    let rest = if let Some(r) = input.strip_prefix("sqlite://") {
        r
    } else if let Some(r) = input.strip_prefix("sqlite:") {
        r
    } else if input.contains("://") {
        return Err(StoreError::Url(input.to_string()));
    } else {
        input
    };
    if rest.is_empty() {
        return Err(StoreError::Url(input.to_string()));
    }
    // `mode=rwc` creates the file; keep any options the operator gave.
    let url = if rest.contains('?') {
        if rest.contains("mode=") {
            format!("sqlite://{rest}")
        } else {
            format!("sqlite://{rest}&mode=rwc")
        }
    } else {
        format!("sqlite://{rest}?mode=rwc")
    };
    Ok((Backend::Sqlite, url))
}

/// The file a SQLite URL names (`None` for PostgreSQL, or an in-memory
/// database), so that read-only commands can refuse a missing file rather
/// than create an empty one.
pub fn sqlite_file(input: &str) -> Option<std::path::PathBuf> {
    let (backend, url) = resolve_url(input).ok()?;
    if backend != Backend::Sqlite {
        return None;
    }
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_backends() {
        assert_eq!(
            resolve_url("dw.sqlite").unwrap(),
            (Backend::Sqlite, "sqlite://dw.sqlite?mode=rwc".into())
        );
        assert_eq!(
            resolve_url("sqlite:///tmp/x.db").unwrap().1,
            "sqlite:///tmp/x.db?mode=rwc"
        );
        assert_eq!(
            resolve_url("sqlite://x.db?mode=ro").unwrap().1,
            "sqlite://x.db?mode=ro"
        );
        assert_eq!(
            resolve_url("postgres://u:p@h/db").unwrap().0,
            Backend::Postgres
        );
        assert!(resolve_url("mysql://h/db").is_err());
        assert!(resolve_url("").is_err());
        assert!(resolve_url("sqlite://").is_err());
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        use std::path::PathBuf;
        assert_eq!(sqlite_file("dw.sqlite"), Some(PathBuf::from("dw.sqlite")));
        assert_eq!(
            sqlite_file("sqlite:///tmp/x.db?mode=ro"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_file("postgres://u:p@h/db"), None);
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
