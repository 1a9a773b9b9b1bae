//! The text of a whmtoken config file, read the same way by the command line and by
//! `fake-server`: one `[backend]` table whose `kind` names the backend, the rest of it the
//! section of that kind's [`BackendConfig`](crate::BackendConfig). Every mistake is
//! reported with the file, and with the line and column of the key or value at fault:
//! `config file /etc/whmtoken.toml: line 3, column 1: unknown field `rot`, expected `root``.
//!
//! Reading the file is the caller's: this module only parses text.

use std::fmt;
use std::io;
use std::ops::Range;

use camino::{Utf8Path, Utf8PathBuf};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read; the cause is the error's source.
    #[error("cannot read config file {path}")]
    Unreadable {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file was read but is wrong; `detail` starts with `line L, column C: ` when the
    /// mistake has a place.
    #[error("config file {path}: {detail}")]
    Invalid { path: Utf8PathBuf, detail: String },
}

/// A config file's `[backend]` table, parsed but not yet read as one kind's section.
pub struct ConfigFile<'a> {
    path: &'a Utf8Path,
    text: &'a str,
    kind: Spanned<String>,
    /// The `[backend]` table without its `kind`.
    section: Spanned<DeValue<'a>>,
}

impl fmt::Debug for ConfigFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("kind", self.kind.get_ref())
            .finish_non_exhaustive()
    }
}

impl<'a> ConfigFile<'a> {
    /// Parses `text`, read from `path`: valid TOML, a `[backend]` table and nothing else
    /// at the top level, and a `kind` string in it.
    pub fn parse(path: &'a Utf8Path, text: &'a str) -> Result<Self, ConfigError> {
        let invalid = |span: Option<Range<usize>>, detail: &dyn fmt::Display| {
            invalid(path, text, span, detail)
        };
        let document = DeTable::parse(text).map_err(|e| invalid(e.span(), &e.message()))?;
        let mut document = document.into_inner();
        if let Some((key, value)) = document
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() != "backend")
        {
            let detail = if matches!(value.get_ref(), DeValue::Table(_)) {
                format!(
                    "unknown table `{}`: a config file has only [backend]",
                    key.get_ref()
                )
            } else {
                format!("`{}` must be under [backend]", key.get_ref())
            };
            return Err(invalid(Some(key.span()), &detail));
        }
        let Some(mut section) = document.remove("backend") else {
            return Err(invalid(None, &"no [backend] table"));
        };
        let section_span = section.span();
        let DeValue::Table(table) = section.get_mut() else {
            return Err(invalid(
                Some(section_span),
                &"`backend` must be a table: [backend]",
            ));
        };
        let Some(kind) = table.remove("kind") else {
            return Err(invalid(
                Some(section_span),
                &"[backend] has no `kind` (the backend's name, such as kind = \"files\")",
            ));
        };
        let kind = match kind.get_ref() {
            DeValue::String(name) => Spanned::new(kind.span(), name.to_string()),
            other => {
                return Err(invalid(
                    Some(kind.span()),
                    &format_args!(
                        "`kind` must be a string, such as kind = \"files\", not {}",
                        other.type_str()
                    ),
                ));
            }
        };
        Ok(Self {
            path,
            text,
            kind,
            section,
        })
    }

    /// The `kind` the `[backend]` table names.
    pub fn kind(&self) -> &str {
        self.kind.get_ref()
    }

    /// An error about the kind (unknown, built out), placed at its value.
    pub fn kind_error(&self, detail: impl fmt::Display) -> ConfigError {
        invalid(self.path, self.text, Some(self.kind.span()), &detail)
    }

    /// An error about the file as a whole, placed nowhere in particular.
    pub fn error(&self, detail: impl fmt::Display) -> ConfigError {
        invalid(self.path, self.text, None, &detail)
    }

    /// Reads the rest of `[backend]` (all but `kind`) as `C`; a key `C` does not know, a
    /// missing one or a value of the wrong type is reported where it is.
    pub fn section<C: DeserializeOwned>(self) -> Result<C, ConfigError> {
        let (path, text) = (self.path, self.text);
        C::deserialize(ValueDeserializer::from(self.section)).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            detail: describe_toml_error(text, &e),
        })
    }
}

fn invalid(
    path: &Utf8Path,
    text: &str,
    span: Option<Range<usize>>,
    detail: &dyn fmt::Display,
) -> ConfigError {
    let detail = match span {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {detail}")
        }
        None => detail.to_string(),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        detail,
    }
}

/// A TOML error as one line: `line L, column C: what was wrong` when toml knows where
/// (`text` is the document it was reading), else just what was wrong. For any TOML file
/// read with `toml::from_str`, such as a scenario file.
/// A mistake about a value names its key: `line 3, column 7: `uid`: invalid type: …`.
pub fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let (line, column) = line_column(text, span.start);
    match key_of_value(text, &span) {
        Some(key) => format!("line {line}, column {column}: `{key}`: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

/// The key whose value (or one of whose array's elements) is at `span` in `text`.
fn key_of_value(text: &str, span: &Range<usize>) -> Option<String> {
    fn in_table(table: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
        table
            .iter()
            .find_map(|(key, value)| in_value(key.get_ref(), value, span))
    }
    fn in_value(key: &str, value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<String> {
        if value.span() == *span {
            return Some(key.to_owned());
        }
        match value.get_ref() {
            DeValue::Table(table) => in_table(table, span),
            DeValue::Array(array) => array.iter().find_map(|element| {
                if element.span() == *span {
                    Some(key.to_owned())
                } else {
                    element.get_ref().as_table().and_then(|t| in_table(t, span))
                }
            }),
            _ => None,
        }
    }
    in_table(DeTable::parse(text).ok()?.get_ref(), span)
}

/// The line and column, both counted from 1 (columns in characters), of the byte at
/// `offset` in `text`; an offset past the end is the end.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (index, c) in text.char_indices() {
        if index >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by serde only
    struct Section {
        root: String,
    }

    fn read(text: &str) -> Result<(String, Section), String> {
        let path = Utf8Path::new("/etc/whmtoken.toml");
        let file = ConfigFile::parse(path, text).map_err(|e| e.to_string())?;
        let kind = file.kind().to_owned();
        let section = file.section::<Section>().map_err(|e| e.to_string())?;
        Ok((kind, section))
    }

    #[test]
    fn a_mistyped_key_is_shown_at_its_line_and_column() {
        let err = read("# whmtoken\n[backend]\nrot = \"/\"\nkind = \"files\"\n").unwrap_err();
        assert_eq!(
            err,
            "config file /etc/whmtoken.toml: line 3, column 1: unknown field `rot`, expected `root`"
        );
        let err = read("[backend]\nkind = \"files\"\n  root = 7\n").unwrap_err();
        assert_eq!(
            err,
            "config file /etc/whmtoken.toml: line 3, column 10: `root`: invalid type: integer `7`, expected a string"
        );
    }

    #[test]
    fn the_shape_of_the_file_is_checked_where_it_is_wrong() {
        let (kind, section) = read("[backend]\nkind = \"files\"\nroot = \"/srv\"\n").unwrap();
        assert_eq!((kind.as_str(), section.root.as_str()), ("files", "/srv"));
        let cases = [
            (
                "[backend]\nkind = \"files\"\nroot = \"/\"\n[extra]\n",
                "line 4, column 2: unknown table `extra`: a config file has only [backend]",
            ),
            ("", "no [backend] table"),
            (
                "[backend]\nroot = \"/\"\n",
                "line 1, column 1: [backend] has no `kind`",
            ),
            (
                "[backend]\nkind = 1\n",
                "line 2, column 8: `kind` must be a string, such as kind = \"files\", not integer",
            ),
            (
                "backend = 1\n",
                "line 1, column 11: `backend` must be a table",
            ),
            ("[backend\n", "line 1, column 9: "),
            (
                "# whmtoken\n[backend]\nkind = \"files\"\n",
                "line 2, column 1: `backend`: missing field `root`",
            ),
        ];
        for (text, expected) in cases {
            let err = read(text).unwrap_err();
            let detail = err
                .strip_prefix("config file /etc/whmtoken.toml: ")
                .unwrap_or_else(|| panic!("{err}"));
            assert!(detail.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn kind_errors_point_at_the_kind() {
        let text = "[backend]\nkind   = \"mysql\"\n";
        let file = ConfigFile::parse(Utf8Path::new("c.toml"), text).unwrap();
        assert_eq!(
            file.kind_error("unknown backend kind").to_string(),
            "config file c.toml: line 2, column 10: unknown backend kind"
        );
    }

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        let text = "ab\n“é”x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, text.find('x').unwrap()), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
