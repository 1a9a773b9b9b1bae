//! The command line, compatible with cPanel's Getopt::Long parsing: options may follow user
//! names, unambiguous prefixes work (`--verb`), and long options may be spelled with one
//! dash (`-verbose`, `-all-resellers`).

use std::ffi::OsString;

use camino::Utf8PathBuf;
use clap::Parser;

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
   --acl NAME[,NAME]    Give new tokens only these ACLs (repeatable)
   --expires WHEN       Make new tokens expire: epoch seconds, or a span such as 90d, 12h, 2w
   --allow-ip ADDR      Accept new tokens only from this IP address or CIDR range
                        (repeatable, at most 100)
   --lock-timeout SECS  Wait at most this long for a lock held by another process (default 30)
   --jobs N             Read and write up to N users at once (default: 4 per core, 4 to 16; 1 is serial)
   --config PATH        Config file (default: $WHMTOKEN_CONFIG, else /etc/whmtoken.toml)

Exit status: 0 every user converted or nothing to do; 64 usage error; 65 at least one
user failed (the others were converted); 77 not run as root; 78 bad config file.
";

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

    #[arg(long = "acl", value_name = "NAME")]
    pub acls: Vec<String>,

    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,

    #[arg(long = "allow-ip", value_name = "ADDR")]
    pub allow_ips: Vec<String>,

    #[arg(long, value_name = "SECS")]
    pub lock_timeout: Option<f64>,

    #[arg(long, value_name = "PATH")]
    pub config: Option<Utf8PathBuf>,

    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    #[arg(value_name = "USER")]
    pub users: Vec<String>,
}

/// Short options that stay single-dash; every other `-word` is a long option.
const SHORTS: [&str; 3] = ["-?", "-h", "-n"];

/// Rewrites Getopt::Long's single-dash long options (`-verbose`, `-v`) to `--verbose`,
/// `--v`, up to a `--` that ends the options.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut options_ended = false;
    args.into_iter()
        .enumerate()
        .map(|(index, arg)| {
            if index == 0 || options_ended {
                return arg;
            }
            let Some(text) = arg.to_str() else { return arg };
            if text == "--" {
                options_ended = true;
                return arg;
            }
            let single_dash_long =
                text.len() > 1 && text.starts_with('-') && !text.starts_with("--");
            if single_dash_long && !SHORTS.contains(&text) {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
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
    fn unknown_options_are_errors() {
        let err = parse(&["--bogus"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
