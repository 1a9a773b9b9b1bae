//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: formatting check, clippy with warnings denied, the whole test suite, and a build
//!   of the command line with each backend alone. `.ci/run` calls exactly this.
//! - `demo`: builds a small fake server and converts root and its resellers on it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "demo" => demo(),
        _ => Err("usage: cargo xtask <ci|demo>".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])?;
    for feature in ["files", "sqlite"] {
        cargo(&[
            "check",
            "-p",
            "whmtoken-cli",
            "--no-default-features",
            "--features",
            feature,
            "--locked",
        ])?;
    }
    Ok(())
}

fn demo() -> Result<(), String> {
    cargo(&["build", "--quiet", "-p", "whmtoken-cli"])?;
    let binary = workspace_root().join("target/debug/convert_accesshash_to_token");
    let mut server = FakeServer::new();
    server.write_access_hash("root", &cpanel_style_access_hash("root"));
    for (name, acls) in [
        ("alice", &["list-accts", "create-acct"][..]),
        ("bob", &["clustering"]),
        ("carol", &[]),
    ] {
        server.add_reseller(name, acls);
        if name != "carol" {
            server.write_access_hash(name, &cpanel_style_access_hash(name));
        }
    }
    println!(
        "A fake cPanel server at {} (root, resellers alice, bob and carol; carol has no access hash)\n",
        server.root()
    );
    let config = server.config_path();
    for args in [
        &["--verbose"][..],
        &["--verbose", "--all-resellers"],
        &["--verbose", "--all-resellers"],
    ] {
        println!("$ convert_accesshash_to_token {}", args.join(" "));
        let status = Command::new(&binary)
            .arg("--config")
            .arg(config.as_str())
            .args(args)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        println!("(exit status {})\n", status.code().unwrap_or(-1));
    }
    let root_tokens =
        std::fs::read_to_string(server.token_file("root")).map_err(|e| e.to_string())?;
    println!(
        "{}:\n{root_tokens}\n",
        server
            .token_file("root")
            .strip_prefix(server.root())
            .expect("under root")
    );
    println!(
        "The accounting log:\n{}",
        server.accounting_lines().join("\n")
    );
    Ok(())
}
