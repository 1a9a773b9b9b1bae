//! `convert_accesshash_to_token`: a drop-in replacement for cPanel's script of that name.

fn main() -> std::process::ExitCode {
    whmtoken_cli::converter_main()
}
