//! The command line's one error type, and the one place that maps outcomes to exit
//! statuses.

use std::io;

use whmtoken_core::config_file::ConfigError;
use whmtoken_core::{BackendError, RestrictionError, restrictions::MAX_ALLOW_IPS};

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
    /// The report could not be written to stdout, or the server could not be read.
    pub const IO_ERROR: u8 = 74;
    /// Another process held a lock for too long; try again later.
    pub const TEMPORARY: u8 = 75;
    /// Not run as root on a real server.
    pub const NOT_ROOT: u8 = 77;
    /// The config file is missing, unreadable or wrong, or its backend cannot be opened.
    pub const CONFIG: u8 = 78;
}

/// Everything that stops a run before or after the users are processed. Shown as
/// `error: <message>: <cause>...`, the cause carried once, as the error's source.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    /// An argument that is not what it should be, shown as an `error:` line (exit 64).
    #[error("{0}")]
    Argument(String),
    #[error("This program can only be run by root!")]
    NotRoot,
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    ConfigFile(#[from] ConfigError),
    #[error("cannot open the backend")]
    Open(#[source] BackendError),
    #[error("cannot list resellers")]
    Resellers(#[source] BackendError),
    #[error("cannot read the server")]
    Read(#[source] BackendError),
    #[error("cannot write output")]
    Output(#[source] io::Error),
    /// The file `-o` named (`whmtoken report`).
    #[error("cannot write {name}")]
    OutputFile {
        name: String,
        #[source]
        source: io::Error,
    },
    /// An input of `whmtoken report` that cannot be read.
    #[error("cannot read {name}")]
    Input {
        name: String,
        #[source]
        source: io::Error,
    },
    /// Input that is not what it should be (`whmtoken report`: not an audit document, or
    /// the host of another document), exit 65.
    #[error("{0}")]
    Data(String),
    #[error("cannot read the journal of runs")]
    Run(#[source] BackendError),
    #[error("cannot read the logs")]
    Logs(#[source] BackendError),
    /// The server's run lock (another retire or restore run holds it), or its lock file.
    #[error("cannot take the lock of retire and restore runs")]
    RunLock(#[source] BackendError),
}

impl CliError {
    /// The exit status this error ends the run with.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Argument(_) => status::USAGE,
            Self::NotRoot => status::NOT_ROOT,
            Self::Config(_) | Self::ConfigFile(_) | Self::Open(_) => status::CONFIG,
            Self::Resellers(e) if e.is_retryable() => status::TEMPORARY,
            Self::Resellers(_) => status::CONFIG,
            Self::Read(e) if e.is_retryable() => status::TEMPORARY,
            Self::Read(_) => status::IO_ERROR,
            Self::Output(_) | Self::OutputFile { .. } | Self::Input { .. } => status::IO_ERROR,
            Self::Data(_) => status::SOME_FAILED,
            Self::Run(BackendError::NotFound { .. }) => status::USAGE,
            Self::Run(e) if e.is_retryable() => status::TEMPORARY,
            Self::Run(_) => status::IO_ERROR,
            Self::Logs(BackendError::Unsupported { .. }) => status::CONFIG,
            Self::Logs(_) => status::IO_ERROR,
            Self::RunLock(e) if e.is_retryable() => status::TEMPORARY,
            Self::RunLock(_) => status::IO_ERROR,
        }
    }

    /// A restriction given on the command line that cannot be put on a token, in the
    /// words of the option it came from.
    pub fn restriction(e: RestrictionError) -> Self {
        use RestrictionError as R;
        Self::Usage(match &e {
            R::NoAclName => "--acl needs at least one ACL name".to_owned(),
            R::TooManyAllowIps { given } => {
                format!("{given} --allow-ip entries given; at most {MAX_ALLOW_IPS} are allowed")
            }
            R::NotAnAddress(_) | R::HostBitsSet { .. } => format!("--allow-ip {e}"),
            R::UnknownAcl(_) => format!("--acl {e}; --help lists the ACL names"),
            R::InvalidAclName(_) | R::AclNotLowerCase { .. } => format!("--acl {e}"),
            R::BadExpiry(_)
            | R::UnknownExpiryUnit { .. }
            | R::NegativeExpiry(_)
            | R::ZeroExpiry(_)
            | R::ExpiryNotInFuture { .. }
            | R::ExpiryTooFar(_) => format!("--expires {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whmtoken_core::error_chain;

    #[test]
    fn a_reseller_listing_that_timed_out_on_a_lock_is_temporary() {
        let locked = BackendError::Locked {
            location: "/srv/x".into(),
            waited: std::time::Duration::from_secs(3),
        };
        assert_eq!(CliError::Resellers(locked).exit_status(), status::TEMPORARY);
        let locked = BackendError::Locked {
            location: "/srv/x/var/lib/whmtoken/runs.lock".into(),
            waited: std::time::Duration::from_secs(3),
        };
        assert_eq!(CliError::RunLock(locked).exit_status(), status::TEMPORARY);
        let corrupt = BackendError::Corrupt {
            location: "/srv/x".into(),
            detail: "bad".into(),
        };
        let e = CliError::Resellers(corrupt);
        assert_eq!(e.exit_status(), status::CONFIG);
        assert_eq!(error_chain(&e), "cannot list resellers: /srv/x: bad");
    }

    #[test]
    fn restriction_errors_name_their_option() {
        let e = whmtoken_core::Restrictions::default()
            .with_expiry("soon", 0)
            .unwrap_err();
        assert_eq!(
            CliError::restriction(e).to_string(),
            "--expires soon: expected epoch seconds, or a span from now: a whole number and a unit, \
             m (minutes), h (hours), d (days) or w (weeks), such as 90d"
        );
    }
}
