//! What a person sees when something is wrong: each mistake is reported in the tool's own
//! words, names the option, file, line or key at fault, and says what would be right.

use std::process::Command;

use camino::Utf8Path;
use whmtoken_core::acl::BUILTIN_ACLS;

use crate::{Run, run, run_raw, server_with_resellers};

/// `whmtoken ARGS`, nothing inherited from the caller's whmtoken settings.
fn whmtoken(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
        .args(args)
        .env_remove("WHMTOKEN_CONFIG")
        .env_remove("WHMTOKEN_LOG")
        .output()
        .expect("run whmtoken");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// How the converter reports a usage error: the message, then Getopt::Long's last lines.
fn usage(message: &str) -> String {
    format!("{message}\nInvalid usage. See --help\n\n")
}

#[test]
fn a_typo_in_a_config_key_is_shown_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = Utf8Path::from_path(dir.path())
        .unwrap()
        .join("whmtoken.toml");
    std::fs::write(&config, "[backend]\nkind = \"files\"\nrot = \"/srv\"\n").unwrap();
    let expected = format!(
        "error: config file {config}: line 3, column 1: unknown field `rot`, expected `root`\n"
    );
    let out = run_raw(&["--config", config.as_str(), "--dry-run"], &[]);
    assert_eq!((out.code, out.stderr.as_str()), (78, expected.as_str()));
    let out = whmtoken(&["audit", "--config", config.as_str()]);
    assert_eq!((out.code, out.stderr.as_str()), (78, expected.as_str()));
}

#[test]
fn expires_mistakes_name_the_option_and_the_units_it_takes() {
    let server = server_with_resellers();
    let cases = [
        (
            "-5d",
            "--expires -5d: a span counts forward from now and cannot be negative; such as 90d",
        ),
        (
            "5",
            "--expires 5: read as epoch seconds, that is 1970-01-01T00:00:05Z, which is not in \
             the future; for a span from now add a unit, such as 90d",
        ),
        (
            "1y",
            "--expires 1y: “y” is not a unit; a span takes m (minutes), h (hours), d (days) or \
             w (weeks), such as 90d",
        ),
        (
            "45s",
            "--expires 45s: “s” is not a unit; a span takes m (minutes), h (hours), d (days) or \
             w (weeks), such as 90d",
        ),
        (
            "soon",
            "--expires soon: expected epoch seconds, or a span from now: a whole number and a \
             unit, m (minutes), h (hours), d (days) or w (weeks), such as 90d",
        ),
    ];
    for (value, message) in cases {
        for args in [
            &["--expires", value][..],
            &["-exp", value],
            &[&format!("--expires={value}")],
        ] {
            let out = run(&server, args);
            assert_eq!((out.code, out.stdout.as_str()), (64, ""), "{args:?}");
            assert_eq!(out.stderr, usage(message), "{args:?}");
        }
    }
    assert!(!server.token_file("root").exists());
    let out = run(&server, &["--expires"]);
    assert_eq!(out.stderr, usage("Option expires requires an argument"));
}

#[test]
fn lock_timeout_and_jobs_are_explained_in_words() {
    let server = server_with_resellers();
    let seconds = "expected a number of seconds from 0 to 3600, such as 30";
    for value in ["abc", "1e19", "-1", "3600.5", "NaN"] {
        let out = run(&server, &["--lock-timeout", value]);
        assert_eq!(out.code, 64, "{value}");
        assert_eq!(
            out.stderr,
            usage(&format!("--lock-timeout {value}: {seconds}"))
        );
    }
    for value in ["0", "0.5", "3600"] {
        let out = run(&server, &["--dry-run", "--lock-timeout", value]);
        assert_eq!(out.code, 0, "{value}: {}", out.stderr);
    }
    let users = "expected a whole number of users at once, from 1 (one at a time) to 65535";
    for value in ["0", "-2", "many", "65536"] {
        let out = run(&server, &["--jobs", value]);
        assert_eq!(out.code, 64, "{value}");
        assert_eq!(out.stderr, usage(&format!("--jobs {value}: {users}")));
    }
    let out = whmtoken(&["audit", "--jobs", "0"]);
    assert_eq!(out.code, 64);
    assert!(
        out.stderr.contains(users) && !out.stderr.contains("1..="),
        "{}",
        out.stderr
    );
}

#[test]
fn acl_mistakes_say_what_exists_and_help_lists_the_names() {
    let server = server_with_resellers();
    let out = run(&server, &["--acl", "list-accts,bogus"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        usage("--acl “bogus”: no such ACL; --help lists the ACL names")
    );
    let out = run(&server, &["--acl", "ALL"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        usage("--acl “ALL”: ACL names are lower case; did you mean “all”?")
    );
    assert!(!server.token_file("root").exists());

    let help = run_raw(&["--help"], &[]).stdout;
    let listed = help
        .split_once("ACL names for --acl")
        .expect("a section of ACL names")
        .1;
    for acl in BUILTIN_ACLS {
        assert!(
            listed.split_whitespace().any(|word| word == acl),
            "{acl} is not listed:\n{listed}"
        );
    }
    let converted = whmtoken(&["convert", "--help"]).stdout;
    assert!(converted.contains("ACL names for --acl"), "{converted}");
}

#[test]
fn an_invalid_log_filter_is_one_warning_line() {
    let out = run_raw(&["--help"], &[("WHMTOKEN_LOG", "whmtoken_core=[[")]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("warning: WHMTOKEN_LOG=“whmtoken_core=[[” is not a log filter (")
            && out
                .stderr
                .ends_with("); it was ignored, and only warnings are logged\n"),
        "{}",
        out.stderr
    );
    let out = run_raw(&["--help"], &[("WHMTOKEN_LOG", "debug")]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
}

#[test]
fn version_is_the_whole_word_and_ver_is_still_verbose() {
    let version = env!("CARGO_PKG_VERSION");
    for flag in ["--version", "-V", "-version"] {
        let out = run_raw(&[flag], &[]);
        assert_eq!(out.code, 0, "{flag}: {}", out.stderr);
        assert_eq!(
            out.stdout,
            format!("convert_accesshash_to_token (whmtoken) {version}\n"),
            "{flag}"
        );
        // whmtoken's own options are clap's: `-version` only after `convert`.
        let (alone, after_convert) = ([flag], ["convert", flag]);
        let top = (flag != "-version").then_some(&alone[..]);
        for args in top.into_iter().chain([&after_convert[..]]) {
            let out = whmtoken(args);
            assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
            assert_eq!(
                out.stdout,
                format!("whmtoken (whmtoken) {version}\n"),
                "{args:?}"
            );
        }
    }
    let server = server_with_resellers();
    for flag in ["--ver", "--verb", "-ver"] {
        let out = run(&server, &["--dry-run", flag]);
        assert_eq!(out.code, 0, "{flag}: {}", out.stderr);
        assert!(
            out.stdout.starts_with("Would import accesshash for “root”"),
            "{flag}: {}",
            out.stdout
        );
    }
    let out = run(&server, &["--vers"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (64, usage("Unknown option: vers").as_str())
    );
    // A value that looks like the flag is still the option's value.
    let out = run_raw(&["--config", "-V"], &[]);
    assert_eq!(out.code, 78, "{}", out.stderr);
}

#[test]
fn config_mistakes_a_newcomer_makes_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();

    let out = run_raw(&["--config", ""], &[]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            64,
            usage("--config needs the path of a config file").as_str()
        )
    );

    let nowhere = dir.join("nowhere.toml");
    let out = run_raw(&[], &[("WHMTOKEN_CONFIG", nowhere.as_str())]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.starts_with(&format!(
            "error: cannot read config file {nowhere} (named by WHMTOKEN_CONFIG): "
        )),
        "{}",
        out.stderr
    );

    let flat = dir.join("flat.toml");
    std::fs::write(&flat, "root = \".\"\n").unwrap();
    let out = run_raw(&["--config", flat.as_str()], &[]);
    assert_eq!(
        out.stderr,
        format!("error: config file {flat}: line 1, column 1: `root` must be under [backend]\n")
    );

    let db = dir.join("server.db");
    std::fs::write(&db, b"SQLite format 3\0\xff\xfe\x00\x01").unwrap();
    let out = run_raw(&["--config", db.as_str()], &[]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr
            .ends_with("it is not text (a database? --config takes the whmtoken.toml beside it)\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn audit_of_a_name_that_is_not_an_account_name_is_a_usage_error() {
    let server = server_with_resellers();
    let out = whmtoken(&[
        "--config",
        server.config_path().as_str(),
        "audit",
        "bad/name",
    ]);
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("invalid user name “bad/name”"),
        "{}",
        out.stderr
    );
}
