//! `whmtoken verify`: what cPanel's server would answer to `Authorization: whm USER:SECRET`,
//! the secret read from standard input (never from the command line or the environment).
//!
//! Typed on a terminal, the secret is never shown: the terminal's echo is off while it is
//! read (`EchoOff`), and put back on every way out (an error, a panic, or a signal).

use std::io::{self, IsTerminal, Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use camino::Utf8Path;
use rustix::termios::{LocalModes, OptionalActions, Termios};
use serde_json::json;
use whmtoken_core::auth::{self, Access, Attempt, Verdict};
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::{AccessHash, UserName};

use crate::config;
use crate::dates::Dates;
use crate::error::{CliError, status};
use crate::output::shown;

/// `whmtoken verify USER [--from IP] [--at EPOCH] [--json] < secret`
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The account the client authenticates as
    #[arg(value_name = "USER")]
    pub user: String,
    /// The client's IP address, for tokens with an allow-list
    #[arg(long, value_name = "IP")]
    pub from: Option<IpAddr>,
    /// The time of the request, in epoch seconds [default: now]
    #[arg(long, value_name = "EPOCH")]
    pub at: Option<i64>,
    /// Print one JSON document on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// Exit status when the answer depends on the client's address (`--from` not given).
pub const DEPENDS: u8 = 2;

/// Decides and prints; returns 0 (accepted), 1 (refused) or [`DEPENDS`].
pub fn run(args: VerifyArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let user = UserName::new(&args.user).map_err(|e| CliError::Usage(e.to_string()))?;
    let stdin = io::stdin();
    let hidden = stdin.is_terminal().then(|| prompt(&user));
    let secret = read_secret(stdin.lock());
    drop(hidden);
    let secret = secret?;
    if secret.token_hash().is_none() {
        return Err(CliError::Usage(
            "no secret on standard input (it is empty or only whitespace)".to_owned(),
        ));
    }
    let settings = config::load_settings(config)?;
    settings.check_root()?;
    let backend = settings
        .open(DEFAULT_LOCK_TIMEOUT)
        .map_err(CliError::Open)?;
    let attempt = Attempt {
        user: &user,
        secret: &secret,
        from: args.from,
        at: args
            .at
            .unwrap_or_else(|| jiff::Timestamp::now().as_second()),
    };
    let server = backend.server_settings().map_err(CliError::Read)?;
    let verdict = auth::verify(backend.as_ref(), server, &attempt).map_err(CliError::Read)?;
    let mut stdout = io::stdout().lock();
    let written = if args.json {
        writeln!(stdout, "{:#}", document(&user, &verdict))
    } else {
        let dates = Dates::new(&whmtoken_backends::SystemClock);
        writeln!(stdout, "{}", line(&user, &verdict, dates))
    };
    match written.and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(CliError::Output(e)),
        _ => {}
    }
    Ok(match verdict {
        Verdict::Token { .. } | Verdict::AccessHash { .. } => status::OK,
        Verdict::Refused(_) => 1,
        Verdict::DependsOnAddress { .. } => DEPENDS,
    })
}

/// Says on stderr that the secret is read, with the terminal's echo off when it can be
/// turned off (the guard puts it back when dropped), else that it is shown as typed.
fn prompt(user: &UserName) -> Option<EchoOff> {
    let hidden = EchoOff::new().ok();
    let how = if hidden.is_some() {
        "it is not shown as you type"
    } else {
        "it is shown as you type: prefer < FILE"
    };
    let _ = writeln!(
        io::stderr(),
        "whmtoken verify: type {user}'s secret ({how}), then Enter and Ctrl-D"
    );
    hidden
}

/// The echo of standard input's terminal, off while this lives. Its settings as they were
/// are put back when it is dropped (a return, an error, a panic's unwinding) or, from a
/// thread waiting for them, on SIGINT, SIGTERM or SIGHUP, which then end the process
/// (exit 75): Ctrl-C never leaves a terminal that hides what is typed.
struct EchoOff {
    saved: Arc<Mutex<Option<Termios>>>,
}

impl EchoOff {
    fn new() -> io::Result<Self> {
        let saved = rustix::termios::tcgetattr(io::stdin())?;
        let mut hidden = saved.clone();
        hidden.local_modes.remove(LocalModes::ECHO);
        // The line breaks typed still show, so that each line is seen to be taken.
        hidden.local_modes.insert(LocalModes::ECHONL);
        let saved = Arc::new(Mutex::new(Some(saved)));
        restore_on_signals(Arc::clone(&saved))?;
        rustix::termios::tcsetattr(io::stdin(), OptionalActions::Now, &hidden)?;
        Ok(Self { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        restore(&self.saved);
    }
}

/// Puts the terminal's settings back, once, whoever comes first.
fn restore(saved: &Mutex<Option<Termios>>) {
    let taken = saved.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(termios) = taken {
        let _ = rustix::termios::tcsetattr(io::stdin(), OptionalActions::Now, &termios);
    }
}

/// From now on, SIGINT, SIGTERM and SIGHUP put the terminal back and end verify with exit
/// 75 (interrupted), as they end other runs; nothing was verified.
fn restore_on_signals(saved: Arc<Mutex<Option<Termios>>>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            restore(&saved);
            let _ = writeln!(
                io::stderr(),
                "\nwhmtoken verify: interrupted; nothing was verified"
            );
            std::process::exit(i32::from(status::TEMPORARY));
        }
    });
    Ok(())
}

/// The secret from `input`, at most [`AccessHash::MAX_LEN`] bytes, straight into an
/// [`AccessHash`] (whitespace is ignored when it is hashed).
///
/// It is read into one buffer allocated whole beforehand and wiped when dropped: a buffer
/// that grew would leave copies of the secret behind in freed memory.
fn read_secret(mut input: impl Read) -> Result<AccessHash, CliError> {
    let limit = AccessHash::MAX_LEN;
    let mut raw = zeroize::Zeroizing::new(vec![0u8; limit + 1]);
    let mut filled = 0;
    while filled < raw.len() {
        match input.read(&mut raw[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "cannot read the secret from standard input: {e}"
                )));
            }
        }
    }
    let too_long = filled > limit;
    // Shortened in place (nothing reallocates); `AccessHash` copies it into its own
    // exact buffer and wipes this one, spare capacity included.
    raw.truncate(filled);
    let secret = AccessHash::from_bytes(std::mem::take(&mut *raw));
    if too_long {
        return Err(CliError::Usage(format!(
            "the secret on standard input is longer than {limit} bytes"
        )));
    }
    Ok(secret)
}

fn line(user: &UserName, verdict: &Verdict, dates: Dates) -> String {
    match verdict {
        Verdict::Token { name, access, .. } => {
            let access = match access {
                Access::Full => "full access".to_owned(),
                Access::Acls(acls) if acls.is_empty() => "acls: none the account holds".to_owned(),
                Access::Acls(acls) => format!("acls: {}", shown(&acls.join(", "))),
            };
            format!("accepted: {user} via token “{}” ({access})", shown(name))
        }
        Verdict::AccessHash { .. } => format!("accepted: {user} via access hash (deprecated)"),
        Verdict::DependsOnAddress { name } => format!(
            "depends on the address: token “{}” has an allow-list; give the client's address with --from",
            shown(name)
        ),
        Verdict::Refused(auth::Refusal::Expired { name, expires_at }) => format!(
            "refused: token “{}” expired {}",
            shown(name),
            dates.when(*expires_at)
        ),
        Verdict::Refused(why) => format!("refused: {}", shown(&why.to_string())),
    }
}

fn document(user: &UserName, verdict: &Verdict) -> serde_json::Value {
    let mut doc = json!({
        "version": 1,
        "user": user.as_str(),
        "accepted": matches!(verdict, Verdict::Token { .. } | Verdict::AccessHash { .. }),
        "via": null,
    });
    match verdict {
        Verdict::Token { name, access, .. } => {
            doc["via"] = json!("token");
            doc["token_name"] = json!(name);
            doc["full_access"] = json!(*access == Access::Full);
            if let Access::Acls(acls) = access {
                doc["acls"] = json!(acls);
            }
        }
        Verdict::AccessHash { .. } => doc["via"] = json!("accesshash"),
        Verdict::DependsOnAddress { name } => {
            doc["token_name"] = json!(name);
            doc["reason"] = json!("the token has an allow-list and no address was given");
        }
        Verdict::Refused(why) => doc["reason"] = json!(why.to_string()),
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, as a pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_secret_is_read_whole_from_short_reads_into_one_buffer_and_bounded() {
        let secret = "00112233445566778899aabbccddeeff\n".repeat(30);
        let read = read_secret(Trickle(secret.as_bytes())).unwrap();
        let expected = AccessHash::from_bytes(secret.clone().into_bytes());
        assert_eq!(read.token_hash().unwrap(), expected.token_hash().unwrap());
        let long = vec![b'a'; AccessHash::MAX_LEN + 1];
        let err = read_secret(Trickle(&long)).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
