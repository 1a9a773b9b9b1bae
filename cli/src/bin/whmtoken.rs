//! `whmtoken`: the migration from access hashes to API tokens, one subcommand a step.

fn main() -> std::process::ExitCode {
    whmtoken_cli::whmtoken_main()
}
