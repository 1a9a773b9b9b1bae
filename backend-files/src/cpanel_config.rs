//! `var/cpanel/cpanel.config`: the server's tweak settings, one `key=value` a line. Only the
//! settings the converter needs are read; every other line is left alone.

use whmtoken_core::ServerSettings;

/// The tweak setting that lets a `~/.accesshash` still authenticate API calls.
const ALLOW_DEPRECATED_ACCESSHASH: &str = "allow_deprecated_accesshash";

/// The settings `text` holds; a setting it does not hold has cPanel's default. Lines
/// without `=`, blank lines and `#` comments are not settings. The last line for a key wins,
/// as it does when cPanel loads the file. `Err` names the line of a value that is neither
/// on (`1`) nor off (`0` or empty).
pub(crate) fn parse(text: &str) -> Result<ServerSettings, String> {
    let mut settings = ServerSettings::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != ALLOW_DEPRECATED_ACCESSHASH {
            continue;
        }
        settings.allow_deprecated_accesshash = match value.trim() {
            "1" => true,
            "0" | "" => false,
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(format!(
                    "line {}: {ALLOW_DEPRECATED_ACCESSHASH} is “{}”, expected 0 or 1",
                    index + 1,
                    shown.escape_debug()
                ));
            }
        };
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> bool {
        parse(text).unwrap().allow_deprecated_accesshash
    }

    #[test]
    fn reads_the_setting_and_defaults_to_off() {
        assert!(!allowed(""));
        assert!(!allowed("skipanalog=1\nallow_deprecated_accesshash=0\n"));
        assert!(allowed("skipanalog=1\nallow_deprecated_accesshash=1\n"));
        assert!(allowed("allow_deprecated_accesshash = 1\r\n"));
        assert!(!allowed("allow_deprecated_accesshash=\n"));
        assert!(!allowed("# allow_deprecated_accesshash=1\n"));
        assert!(!allowed(
            "xallow_deprecated_accesshash=1\nallow_deprecated_accesshash\n"
        ));
        assert!(!allowed(
            "allow_deprecated_accesshash=1\nallow_deprecated_accesshash=0\n"
        ));
    }

    #[test]
    fn an_unknown_value_names_its_line() {
        let err = parse("a=b\nallow_deprecated_accesshash=yes\n").unwrap_err();
        assert_eq!(
            err,
            "line 2: allow_deprecated_accesshash is “yes”, expected 0 or 1"
        );
    }
}
