//! `fake-server`: fake cPanel servers for whmtoken's test environments.

fn main() -> std::process::ExitCode {
    whmtoken_fake_server::main()
}
