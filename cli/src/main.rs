//! `convert_accesshash_to_token`: a drop-in replacement for cPanel's script of that name.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    whmtoken_cli::exit(|| {
        let argv: Vec<OsString> = std::env::args_os().collect();
        if whmtoken_cli::wants_version(&argv) {
            return whmtoken_cli::print_version("convert_accesshash_to_token");
        }
        whmtoken_cli::convert::run(argv)
    })
}
