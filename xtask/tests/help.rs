//! `cargo xtask --help` and `cargo xtask TASK --help`: they print what a task does and run
//! nothing.

use std::process::Command;

fn xtask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("run xtask");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn help_lists_the_tasks() {
    for flag in ["--help", "-h", "help"] {
        let (ok, stdout, stderr) = xtask(&[flag]);
        assert!(ok, "{flag}: {stderr}");
        assert!(
            stdout
                .starts_with("usage: cargo xtask <ci|dist|man|fleet|browser|demo|bench|faultdisk>"),
            "{stdout}"
        );
    }
}

#[test]
fn a_tasks_help_says_what_it_does_and_runs_nothing() {
    for (task, usage) in [
        ("ci", "ci"),
        ("dist", "dist [--check]"),
        ("man", "man"),
        ("fleet", "fleet"),
        ("browser", "browser"),
        ("demo", "demo"),
        ("bench", "bench [serve|filesystems|usage|report]"),
        ("faultdisk", "faultdisk"),
    ] {
        for flag in ["--help", "-h"] {
            let (ok, stdout, stderr) = xtask(&[task, flag]);
            assert!(ok, "{task} {flag}: {stderr}");
            assert!(
                stdout.starts_with(&format!("usage: cargo xtask {usage}\n\n")),
                "{task} {flag}: {stdout}"
            );
            // Every task announces each command before it runs it: nothing was announced.
            assert_eq!(stderr, "", "{task} {flag} ran something");
        }
    }
}

#[test]
fn unknown_tasks_and_arguments_are_refused() {
    let (ok, _, stderr) = xtask(&["bench", "--resellers"]);
    assert!(!ok);
    assert_eq!(
        stderr,
        "xtask: bench takes no such argument (given: --resellers); cargo xtask bench --help says what it does\n"
    );
    let (ok, _, stderr) = xtask(&["frobnicate"]);
    assert!(!ok && stderr.contains("usage: cargo xtask"), "{stderr}");
}
