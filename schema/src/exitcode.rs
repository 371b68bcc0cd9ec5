//! Exit codes of the darkwatch binaries and the error that carries one to
//! `main`. Codes follow sysexits.h (64 usage, 65 bad data, 66 missing input,
//! 69 service unavailable, 71 OS error, 77 missing privileges, 78 bad
//! config), with 1 for anything else. Both the agent and the collector map
//! their failures onto this one table, so a script reads the same code for
//! the same kind of failure from either.

use std::fmt;

/// Anything not covered below.
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 64;
pub const DATAERR: u8 = 65;
pub const NOINPUT: u8 = 66;
pub const UNAVAILABLE: u8 = 69;
pub const OSERR: u8 = 71;
pub const NOPERM: u8 = 77;
pub const CONFIG: u8 = 78;

/// A failure on its way to stderr (one line) and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// An I/O failure of the program itself (writing output, a runtime that
/// would not start); unreadable input files map to [`NOINPUT`] where they
/// are opened.
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(FAILURE, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_sysexits_ones() {
        assert_eq!(
            [USAGE, DATAERR, NOINPUT, UNAVAILABLE, OSERR, NOPERM, CONFIG],
            [64, 65, 66, 69, 71, 77, 78]
        );
        let e = CliError::from(std::io::Error::other("disk full"));
        assert_eq!((e.code, e.to_string()), (FAILURE, "disk full".to_string()));
    }
}
