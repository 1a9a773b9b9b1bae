//! The command line, compatible with cPanel's Getopt::Long parsing: options may follow user
//! names, unambiguous prefixes work (`--verb`), and long options may be spelled with one
//! dash (`-verbose`, `-all-resellers`).

use std::ffi::OsString;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::{CommandFactory, Parser};

/// cPanel's usage text, byte for byte, followed by the options cPanel's script lacks.
pub const HELP: &str = "\
Usage: convert_accesshash_to_token [OPTIONS] [reseller ...]

Options:
   -?, --help           Display this message
   --verbose            Print all of the tokens generated

   --all-resellers      Process all reseller users

   -n, --dry-run        Check everything and report what would be done; write nothing
   --json               Print one JSON report on stdout instead of text
   --replace            Replace a token already converted from the same access hash
   --acl NAME[,NAME]    Give new tokens only these ACLs (repeatable; the names are listed below)
   --expires WHEN       Make new tokens expire: epoch seconds, or a span from now in
                        m (minutes), h (hours), d (days) or w (weeks), such as 90d
   --allow-ip ADDR      Accept new tokens only from this IP address or CIDR range
                        (repeatable, at most 100)
   --lock-timeout SECS  Wait at most this long for a lock held by another process
                        (0 to 3600, default 30)
   --jobs N             Read and write on N threads (default: 8 per core, 8 to 32; 1 is serial)
   --config PATH        Config file (default: $WHMTOKEN_CONFIG, else /etc/whmtoken.toml)
   -V, --version        Print the version

Exit status: 0 every user converted or nothing to do; 64 usage error; 65 at least one
user failed (the others were converted); 70 internal error; 74 output not written;
75 interrupted by a signal, or a lock held too long: run again; 77 not run as root;
78 bad config file or backend.

ACL names for --acl (WHM's built-in ACLs; `all` means full access):
   acct-summary add-pkg add-pkg-ip add-pkg-shell allow-addoncreate allow-emaillimits-pkgs
   allow-parkedcreate allow-shell allow-unlimited-bw-pkgs allow-unlimited-disk-pkgs
   allow-unlimited-pkgs assign-root-account-enhancements basic-system-info
   basic-whm-functions clustering connected-applications cors-proxy-get cpanel-api
   cpanel-integration create-acct create-dns create-user-session demo-setup digest-auth
   edit-account edit-dns edit-mx edit-pkg file-restore generate-email-config kill-acct
   kill-dns limit-bandwidth list-accts list-pkgs locale-edit mailcheck manage-api-tokens
   manage-dns-records manage-oidc manage-styles mysql-info news ns-config park-dns passwd
   public-contact quota rearrange-accts resftp restart show-bandwidth ssl ssl-buy ssl-gencrt
   ssl-info stats status suspend-acct thirdparty track-email upgrade-account
   viewglobalpackages
";

/// The converter's command line as clap sees it, each option's help taken from the usage
/// text `--help` prints (`convert::HELP`), for its man page and shell completions;
/// `--help` itself still prints that text.
pub fn command() -> clap::Command {
    let (options, notes) = HELP
        .split_once("\n\nExit status: ")
        .expect("HELP lists the options, then the exit statuses");
    let mut command = Args::command()
        .about("Convert WHM access hashes into API tokens (drop-in for cPanel's script)")
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            clap::Arg::new("version")
                .short('V')
                .long("version")
                .action(clap::ArgAction::Version),
        )
        .after_long_help(format!("Exit status: {notes}"))
        .mut_arg("users", |arg| {
            arg.help("Users to convert, in order (root when none is given)")
        });
    for (names, help) in option_lines(options) {
        let long = names
            .split([',', ' '])
            .find_map(|word| word.strip_prefix("--"))
            .expect("each option line has a long name");
        let id = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long))
            .unwrap_or_else(|| panic!("--help lists --{long}, which the parser lacks"))
            .get_id()
            .clone();
        command = command.mut_arg(id, |arg| arg.help(help));
    }
    command
}

/// Each option line of [`HELP`]'s options part: the option as written (`-n, --dry-run`),
/// and its description with its continuation lines joined.
fn option_lines(options: &str) -> Vec<(&str, String)> {
    let mut lines: Vec<(&str, String)> = Vec::new();
    for line in options.lines() {
        if let Some(option) = line.strip_prefix("   ").filter(|o| o.starts_with('-')) {
            let (names, help) = option
                .split_once("  ")
                .expect("option, then its description");
            lines.push((names, help.trim().to_owned()));
        } else if let (Some(last), true) = (lines.last_mut(), line.starts_with("        ")) {
            last.1.push(' ');
            last.1.push_str(line.trim());
        }
    }
    lines
}

/// The longest `--lock-timeout`: an hour.
const MAX_LOCK_TIMEOUT_SECS: f64 = 3600.0;

/// Parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "convert_accesshash_to_token",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true
)]
pub struct Args {
    #[arg(short = '?', long, short_alias = 'h')]
    pub help: bool,

    #[arg(long)]
    pub verbose: bool,

    /// `a`, `al` and `all` were unambiguous prefixes in cPanel's script.
    #[arg(long, aliases = ["a", "al", "all"])]
    pub all_resellers: bool,

    #[arg(short = 'n', long)]
    pub dry_run: bool,

    #[arg(long)]
    pub json: bool,

    #[arg(long)]
    pub replace: bool,

    // An option's value may start with a dash (`--expires -5d`), as with Getopt::Long: the
    // value is then reported as a bad value of its option, not as an unknown option.
    #[arg(long = "acl", value_name = "NAME", allow_hyphen_values = true)]
    pub acls: Vec<String>,

    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub expires: Option<String>,

    #[arg(long = "allow-ip", value_name = "ADDR", allow_hyphen_values = true)]
    pub allow_ips: Vec<String>,

    #[arg(long, value_name = "SECS", allow_hyphen_values = true, value_parser = lock_timeout)]
    pub lock_timeout: Option<Duration>,

    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub config: Option<Utf8PathBuf>,

    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = jobs)]
    pub jobs: Option<u16>,

    #[arg(value_name = "USER")]
    pub users: Vec<String>,
}

/// `--lock-timeout` (shared with `whmtoken retire` and `restore`): seconds, 0 to an hour,
/// fractions allowed.
pub(crate) fn lock_timeout(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| (0.0..=MAX_LOCK_TIMEOUT_SECS).contains(secs))
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            format!("expected a number of seconds from 0 to {MAX_LOCK_TIMEOUT_SECS}, such as 30")
        })
}

/// `--jobs` (shared with `whmtoken audit`): a whole number of users at once, 1 or more.
pub(crate) fn jobs(text: &str) -> Result<u16, String> {
    let expected = || {
        format!(
            "expected a whole number of users at once, from 1 (one at a time) to {}",
            u16::MAX
        )
    };
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(expected()),
        Ok(jobs) => Ok(jobs),
    }
}

/// Short options that stay single-dash; every other `-word` is a long option.
const SHORTS: [&str; 3] = ["-?", "-h", "-n"];

/// Rewrites Getopt::Long's single-dash long options (`-verbose`, `-v`) to `--verbose`,
/// `--v`, up to a `--` that ends the options. The value after an option that takes one
/// (`--expires -5d`, `-exp -5d`) is left as it is.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let takes_value = value_options();
    let mut options_ended = false;
    let mut value_next = false;
    args.into_iter()
        .enumerate()
        .map(|(index, arg)| {
            if index == 0 || options_ended || std::mem::take(&mut value_next) {
                return arg;
            }
            let Some(text) = arg.to_str() else { return arg };
            if text == "--" {
                options_ended = true;
                return arg;
            }
            let single_dash_long =
                text.len() > 1 && text.starts_with('-') && !text.starts_with("--");
            let arg = if single_dash_long && !SHORTS.contains(&text) {
                OsString::from(format!("-{text}"))
            } else {
                arg
            };
            if let Some(name) = arg.to_str().and_then(|a| a.strip_prefix("--")) {
                value_next = !name.contains('=') && takes_value(name);
            }
            arg
        })
        .collect()
}

/// Whether the arguments (the program name first) ask for the version: `--version`,
/// `-version` or `-V` among the options. Only the whole word: `--ver` and `--vers` are not
/// `--version` (cPanel's script read `--ver` as `--verbose`).
pub fn wants_version(args: &[OsString]) -> bool {
    let normalized = normalize(args.iter().cloned());
    let takes_value = value_options();
    let mut value_next = false;
    for arg in normalized.iter().skip(1) {
        if std::mem::take(&mut value_next) {
            continue;
        }
        let Some(text) = arg.to_str() else { continue };
        match text {
            "--" => return false,
            "--version" | "--V" => return true,
            _ => {}
        }
        if let Some(name) = text.strip_prefix("--") {
            value_next = !name.contains('=') && takes_value(name);
        }
    }
    false
}

/// Whether a long option, spelled in full, by an alias, or by an unambiguous prefix as
/// clap resolves it (`--exp`), takes a value.
fn value_options() -> impl Fn(&str) -> bool {
    let command = Args::command();
    let options: Vec<(Vec<String>, bool)> = command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let mut names = vec![long.to_owned()];
            names.extend(
                arg.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(str::to_owned),
            );
            Some((names, arg.get_action().takes_values()))
        })
        .collect();
    move |name: &str| {
        if let Some((_, takes)) = options
            .iter()
            .find(|(names, _)| names.iter().any(|n| n == name))
        {
            return *takes;
        }
        let mut matching = options
            .iter()
            .filter(|(names, _)| names.iter().any(|n| n.starts_with(name)));
        match (matching.next(), matching.next()) {
            (Some((_, takes)), None) => *takes,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<Args, clap::Error> {
        let argv = std::iter::once("convert_accesshash_to_token").chain(line.iter().copied());
        Args::try_parse_from(normalize(argv.map(OsString::from)))
    }

    #[test]
    fn getopt_long_spellings_are_accepted() {
        for line in [&["--verbose"][..], &["-verbose"], &["--verb"], &["-v"]] {
            assert!(parse(line).unwrap().verbose, "{line:?}");
        }
        for line in [
            &["--all-resellers"][..],
            &["-all-resellers"],
            &["-a"],
            &["--all"],
            &["--all-r"],
        ] {
            assert!(parse(line).unwrap().all_resellers, "{line:?}");
        }
        for line in [&["-?"][..], &["-h"], &["--help"], &["-help"], &["--he"]] {
            assert!(parse(line).unwrap().help, "{line:?}");
        }
    }

    #[test]
    fn options_may_follow_users_and_double_dash_ends_them() {
        let args = parse(&["bob", "--verbose", "alice"]).unwrap();
        assert!(args.verbose);
        assert_eq!(args.users, ["bob", "alice"]);
        let args = parse(&["--", "-x"]).unwrap();
        assert_eq!(args.users, ["-x"]);
    }

    #[test]
    fn restriction_options_repeat() {
        let args = parse(&["--acl", "a,b", "--acl=c", "--allow-ip", "10.0.0.1", "-n"]).unwrap();
        assert_eq!(args.acls, ["a,b", "c"]);
        assert_eq!(args.allow_ips, ["10.0.0.1"]);
        assert!(args.dry_run);
    }

    #[test]
    fn an_options_value_may_start_with_a_dash() {
        for line in [
            &["--expires", "-5d"][..],
            &["-expires", "-5d"],
            &["--exp", "-5d"],
            &["--expires=-5d"],
        ] {
            assert_eq!(
                parse(line).unwrap().expires.as_deref(),
                Some("-5d"),
                "{line:?}"
            );
        }
        let args = parse(&["--config", "-x", "-verbose", "bob"]).unwrap();
        assert_eq!(args.config.as_deref(), Some(camino::Utf8Path::new("-x")));
        assert!(args.verbose);
        assert_eq!(args.users, ["bob"]);
    }

    #[test]
    fn only_the_whole_word_asks_for_the_version() {
        let wants = |line: &[&str]| {
            let argv: Vec<OsString> = std::iter::once("convert_accesshash_to_token")
                .chain(line.iter().copied())
                .map(OsString::from)
                .collect();
            wants_version(&argv)
        };
        for line in [
            &["--version"][..],
            &["-V"],
            &["-version"],
            &["bob", "--version"],
        ] {
            assert!(wants(line), "{line:?}");
        }
        for line in [
            &["--ver"][..],
            &["--verb"],
            &["--vers"],
            &["-v"],
            &["--", "--version"],
            &["--config", "-V"],
            &["--acl", "--version"],
        ] {
            assert!(!wants(line), "{line:?}");
        }
        for line in [&["--ver"][..], &["--verb"], &["-ver"]] {
            assert!(parse(line).unwrap().verbose, "{line:?}");
        }
    }

    #[test]
    fn lock_timeout_is_seconds_up_to_an_hour() {
        let timeout = |s: &str| parse(&["--lock-timeout", s]).map(|a| a.lock_timeout.unwrap());
        assert_eq!(timeout("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(timeout("3600").unwrap(), Duration::from_secs(3600));
        for bad in ["abc", "-1", "1e19", "inf", "NaN", "3601"] {
            let err = timeout(bad).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
    }

    #[test]
    fn the_help_lists_exactly_the_builtin_acls() {
        let listed: std::collections::BTreeSet<&str> = HELP
            .split_once("ACL names for --acl (WHM's built-in ACLs; `all` means full access):\n")
            .expect("the section")
            .1
            .split_whitespace()
            .collect();
        let builtin: std::collections::BTreeSet<&str> =
            whmtoken_core::acl::BUILTIN_ACLS.into_iter().collect();
        assert_eq!(listed, builtin);
    }

    #[test]
    fn the_documented_command_has_every_option_of_the_help_and_no_other() {
        let command = command();
        let (options, _) = HELP.split_once("\n\nExit status: ").unwrap();
        let lines = option_lines(options);
        assert_eq!(lines.len(), 13, "{lines:?}");
        for (names, help) in &lines {
            let long = names
                .rsplit("--")
                .next()
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(long))
                .unwrap();
            assert_eq!(arg.get_help().map(ToString::to_string).as_ref(), Some(help));
        }
        let documented = command.get_arguments().filter(|a| a.get_long().is_some());
        assert_eq!(documented.count(), lines.len());
        assert!(
            lines
                .iter()
                .any(|(names, help)| *names == "-?, --help" && help == "Display this message")
        );
        assert!(
            lines.iter().any(|(names, help)| *names == "--expires WHEN"
                && help.ends_with("w (weeks), such as 90d"))
        );
    }

    #[test]
    fn unknown_options_are_errors() {
        let err = parse(&["--bogus"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
