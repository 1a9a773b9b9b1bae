//! The command line's one error type and its exit statuses.

use std::process::ExitCode;

/// Exit statuses (sysexits.h). cPanel's script always exits 0; ours says what happened.
pub mod status {
    /// Every user was converted, was already converted, or had no access hash.
    pub const OK: u8 = 0;
    /// The command line was wrong.
    pub const USAGE: u8 = 64;
    /// At least one user failed; the others were still converted.
    pub const SOME_FAILED: u8 = 65;
    /// An internal error (a bug).
    pub const SOFTWARE: u8 = 70;
    /// Not run as root on a real server.
    pub const NOT_ROOT: u8 = 77;
    /// The config file is missing, unreadable or wrong, or its backend cannot be opened.
    pub const CONFIG: u8 = 78;
}

/// Everything that stops a run before any user is processed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("This program can only be run by root!")]
    NotRoot,
    #[error("{0}")]
    Config(String),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Usage(_) => status::USAGE,
            Self::NotRoot => status::NOT_ROOT,
            Self::Config(_) => status::CONFIG,
            Self::Output(_) => status::SOFTWARE,
        })
    }
}
