//! The `settings` table: the server's settings, one row per setting, as cPanel's
//! `cpanel.config` holds them (`allow_deprecated_accesshash` is `'1'` or `'0'`). A setting
//! without a row has cPanel's default.

use rusqlite::{Connection, OptionalExtension};
use whmtoken_core::{BackendError, ServerSettings};

use crate::error::Site;

/// The tweak setting that lets a `~/.accesshash` still authenticate API calls.
pub(crate) const ALLOW_DEPRECATED_ACCESSHASH: &str = "allow_deprecated_accesshash";

/// Stores a setting, replacing its value if it has one.
#[cfg(feature = "harness")]
pub(crate) const UPSERT_SETTING: &str = "INSERT INTO settings (name, value) VALUES (?1, ?2)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// The settings stored in the database.
pub(crate) fn read(conn: &Connection, site: &Site) -> Result<ServerSettings, BackendError> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([ALLOW_DEPRECATED_ACCESSHASH], |row| row.get(0))
                .optional()
        })
        .map_err(|e| site.sql(Some("settings"), e))?;
    let allow_deprecated_accesshash = match value.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(site.corrupt(
                "settings",
                None,
                format!(
                    "{ALLOW_DEPRECATED_ACCESSHASH} is “{}”, expected '0' or '1'",
                    shown.escape_debug()
                ),
            ));
        }
    };
    Ok(ServerSettings {
        allow_deprecated_accesshash,
    })
}

/// The value stored for a setting that is on or off.
#[cfg(feature = "harness")]
pub(crate) fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}
