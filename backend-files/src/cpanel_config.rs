//! `var/cpanel/cpanel.config`: the server's tweak settings, one `key=value` a line. Only the
//! settings the converter needs are read; every other line is left alone. Retirement sets
//! `allow_deprecated_accesshash` under cPanel's lock protocol for that file (a
//! `cpanel.config.lock` dot-lock, then a flock), written to a new file beside it that is
//! renamed over it, every other line kept byte for byte.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use camino::Utf8PathBuf;
use whmtoken_core::retire::ALLOW_DEPRECATED_ACCESSHASH;
use whmtoken_core::{BackendError, ServerSettings};

use crate::journal::sync_folder;
use crate::lock::{Deadline, DotLock, flock_exclusive, unique_suffix};
use crate::safe_fs::{Expect, Made, check, guarded_flags, io_error, open_guarded, read_bounded};
use crate::{CPANEL_CONFIG, FilesBackend};

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

/// The value of the last line that sets `allow_deprecated_accesshash` (what cPanel uses),
/// trimmed; `None` when no line sets it.
pub(crate) fn setting_value(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(setting_line_value)
        .map(str::to_owned)
}

fn setting_line_value(line: &str) -> Option<&str> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let (key, value) = line.split_once('=')?;
    (key.trim() == ALLOW_DEPRECATED_ACCESSHASH).then(|| value.trim())
}

/// `text` with every line setting `allow_deprecated_accesshash` set to `value` (removed for
/// `None`), every other line kept byte for byte; a line is appended when none sets it.
pub(crate) fn with_setting(text: &str, value: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() + 40);
    let mut found = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if setting_line_value(body).is_none() {
            out.push_str(line);
            continue;
        }
        found = true;
        if let Some(value) = value {
            out.push_str(&format!("{ALLOW_DEPRECATED_ACCESSHASH}={value}"));
            out.push_str(&line[body.len()..]);
        }
    }
    if let (false, Some(value)) = (found, value) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{ALLOW_DEPRECATED_ACCESSHASH}={value}\n"));
    }
    out
}

/// Every line of `text` that sets `allow_deprecated_accesshash`, byte for byte, its line
/// ending included.
pub(crate) fn setting_lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n')
        .filter(|line| setting_line_value(line.trim_end_matches(['\n', '\r'])).is_some())
        .map(str::to_owned)
        .collect()
}

/// `text` with its lines setting `allow_deprecated_accesshash` replaced by `lines`, in
/// order and in place (the run rewrote each where it was), byte for byte; lines left over
/// are appended, lines beyond them removed. Every other line is kept byte for byte.
pub(crate) fn with_lines(text: &str, lines: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + 40);
    let mut next = lines.iter();
    for line in text.split_inclusive('\n') {
        if setting_line_value(line.trim_end_matches(['\n', '\r'])).is_none() {
            out.push_str(line);
        } else if let Some(old) = next.next() {
            out.push_str(old);
        }
    }
    for old in next {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(old);
    }
    out
}

impl FilesBackend {
    /// Rewrites `cpanel.config` as `edit` makes it from its text (`with_setting`,
    /// `with_lines`) under cPanel's locks for that file, only when the setting's value (the
    /// last line's, `None` when unset) is still `expected`; `false`: it was not, and nothing
    /// was written.
    pub(crate) fn set_setting_if(
        &self,
        expected: Option<&str>,
        edit: &dyn Fn(&str) -> String,
    ) -> Result<bool, BackendError> {
        let path = self.root.join(CPANEL_CONFIG);
        let deadline = Deadline::after(self.lock_timeout);
        let _dot_lock = DotLock::acquire(&path, &self.runs.config_locks, deadline)?;
        let existing = open_guarded(&path, OpenOptions::new().read(true))?;
        let expect = Expect {
            owner: Some(self.token_owner),
            max_len: 64 << 20,
            secret: false,
        };
        let (text, meta) = match &existing {
            Some(file) => {
                flock_exclusive(&path, file, deadline)?;
                let meta = check(&path, file, expect)?;
                let bytes = read_bounded(&path, file, meta.len(), expect.max_len)?;
                (bytes, Some(meta))
            }
            None => (Vec::new(), None),
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        if setting_value(&text).as_deref() != expected {
            return Ok(false);
        }
        let new_text = edit(&text);
        // What a killed restore (or retire) left here, as the converter's debris is swept.
        let folder = path.parent().expect("in var/cpanel");
        if let Ok(dir) = crate::journal::open_folder(folder) {
            crate::debris::sweep(folder, &dir, crate::debris::Leftovers::VarCpanel);
        }
        let temp = Utf8PathBuf::from(format!("{path}.whmtoken-{}", unique_suffix()));
        let mode = meta.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(guarded_flags())
            .open(&temp)
            .map_err(|e| io_error(&temp, e))?;
        let made = Made::new(&temp);
        if let Some(meta) = &meta {
            std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| io_error(&temp, e))?;
        }
        file.set_permissions(Permissions::from_mode(mode))
            .and_then(|()| (&file).write_all(new_text.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&temp, e))?;
        fs::rename(&temp, &path).map_err(|e| io_error(&path, e))?;
        made.keep();
        sync_folder(path.parent().expect("in var/cpanel"))?;
        Ok(true)
    }
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
    fn the_setting_is_changed_and_every_other_line_kept() {
        let text = "a=1\r\nallow_deprecated_accesshash=1\r\n# allow_deprecated_accesshash=1\nz=2";
        assert_eq!(setting_value(text).as_deref(), Some("1"));
        let off = with_setting(text, Some("0"));
        assert_eq!(
            off,
            "a=1\r\nallow_deprecated_accesshash=0\r\n# allow_deprecated_accesshash=1\nz=2"
        );
        assert_eq!(
            with_setting("a=1", Some("0")),
            "a=1\nallow_deprecated_accesshash=0\n"
        );
        assert_eq!(
            with_setting("", Some("0")),
            "allow_deprecated_accesshash=0\n"
        );
        assert_eq!(
            with_setting("a=1\nallow_deprecated_accesshash=0\nb\n", None),
            "a=1\nb\n"
        );
        assert_eq!(setting_value("a=1\n"), None);
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
