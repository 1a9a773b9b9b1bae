//! `convert_accesshash_to_token`: a drop-in replacement for cPanel's script of that name.

use std::process::ExitCode;

fn main() -> ExitCode {
    whmtoken_cli::exit(|| whmtoken_cli::convert::run(std::env::args_os().collect()))
}
