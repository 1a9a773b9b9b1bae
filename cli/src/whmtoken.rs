//! The `whmtoken` program: the migration from access hashes to API tokens, one subcommand
//! a step. Its clap definition is [`command`], from which `cargo xtask dist` makes the man
//! pages and completions.

use std::ffi::OsString;
use std::process::ExitCode;

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand};

use crate::audit::AuditArgs;
use crate::report::ReportArgs;
use crate::retire::{RestoreArgs, RetireArgs, RunsArgs};
use crate::usage::UsageArgs;
use crate::verify::VerifyArgs;
use crate::{CliError, audit, convert, report, retire, status, usage, verify};

#[derive(Debug, Parser)]
#[command(
    name = "whmtoken",
    version = concat!("(whmtoken) ", env!("CARGO_PKG_VERSION")),
    about = "Move a cPanel server from WHM access hashes to API tokens",
    after_help = "Exit statuses: convert as convert_accesshash_to_token; audit 0 (nothing at or above --fail-on) or 1; \
verify 0 accepted, 1 refused, 2 depends on the address, 75 interrupted (secret typed on a terminal); retire and restore 0, or 65 when an account or the \
setting was refused or failed; usage 0; report 0, or 65 when an input is not an audit document or \
repeats a host; 64 usage (restore: no such run), 74 cannot read the server, its logs or an \
input, or write output, 77 not root, 78 config."
)]
struct Cli {
    /// Config file [default: $WHMTOKEN_CONFIG, else /etc/whmtoken.toml, else cPanel's files on /]
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<Utf8PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// `retire`'s usage: its three forms (clap would show `--setting-only` with users, which it
/// refuses).
const RETIRE_USAGE: &str = "whmtoken retire [OPTIONS] [USER]...
       whmtoken retire [OPTIONS] --all-resellers
       whmtoken retire [OPTIONS] --setting-only --disable-accesshash-auth";

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert access hashes into API tokens: convert_accesshash_to_token's options, output
    /// and exit statuses (`whmtoken convert --help` lists them)
    #[command(disable_help_flag = true, after_long_help = convert::HELP)]
    Convert {
        /// The converter's options and users, as convert_accesshash_to_token takes them
        /// (listed below)
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    /// List every access hash and API token, with findings (reads only)
    Audit(AuditArgs),
    /// Answer what the server decides for a client's secret, read from standard input
    Verify(VerifyArgs),
    /// Move converted access hashes into a root-only backup, recorded in a run's journal;
    /// optionally turn access-hash authentication off
    #[command(override_usage = RETIRE_USAGE)]
    Retire(RetireArgs),
    /// Put back exactly what a retire run changed
    Restore(RestoreArgs),
    /// List the retire runs: id, time, what they changed, whether restored
    Runs(RunsArgs),
    /// Who still uses each access hash and token, from where and when, from cPanel's logs
    /// (reads only)
    Usage(UsageArgs),
    /// One page (or CSV, or JSON Lines) of a fleet's audit documents, one per server
    /// (reads only the documents)
    Report(ReportArgs),
}

/// whmtoken's command line, for its man pages and shell completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `whmtoken` with the process's arguments: runs the subcommand and returns the exit status.
pub fn main() -> ExitCode {
    crate::exit(|| {
        let cli = match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => return clap_exit(&e),
        };
        match cli.command {
            Command::Convert { args } => {
                let mut argv = vec![OsString::from("whmtoken convert")];
                if crate::wants_version(&[&argv[..], &args].concat()) {
                    return crate::print_version("whmtoken");
                }
                if let Some(config) = cli.config {
                    argv.extend([OsString::from("--config"), config.into_string().into()]);
                }
                argv.extend(args);
                convert::run_subcommand(argv)
            }
            Command::Audit(args) => audit::run(args, cli.config.as_deref()),
            Command::Verify(args) => verify::run(args, cli.config.as_deref()),
            Command::Retire(args) => retire::run_retire(args, cli.config.as_deref()),
            Command::Restore(args) => retire::run_restore(args, cli.config.as_deref()),
            Command::Runs(args) => retire::run_runs(args, cli.config.as_deref()),
            Command::Usage(args) => usage::run(args, cli.config.as_deref()),
            Command::Report(args) => report::run(args),
        }
    })
}

/// `--help` and `--version` print and exit 0; any other error of the command line is a
/// usage error (64).
fn clap_exit(e: &clap::Error) -> Result<u8, CliError> {
    let _ = e.print();
    Ok(if e.use_stderr() {
        status::USAGE
    } else {
        status::OK
    })
}
