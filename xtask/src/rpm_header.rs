//! Reads the main header of an RPM file, written here from the format's description (the
//! lead, the signature header, then the header with the package's tags), so that the
//! packages' checks need neither the `rpm` program nor the library that wrote the package.
//!
//! A header is a magic (`8e ad e8 01`), 4 reserved bytes, the number of index entries and
//! the size of the data, both big-endian `u32`; then the entries (tag, type, offset,
//! count: four `u32`) and the data they point into. The signature header is padded to a
//! multiple of 8 bytes.

use std::collections::BTreeMap;
use std::path::Path;

/// The tags the checks read.
pub(crate) mod tag {
    pub(crate) const NAME: u32 = 1000;
    pub(crate) const VERSION: u32 = 1001;
    pub(crate) const RELEASE: u32 = 1002;
    pub(crate) const LICENSE: u32 = 1014;
    pub(crate) const ARCH: u32 = 1022;
    pub(crate) const FILEMODES: u32 = 1030;
    pub(crate) const FILEFLAGS: u32 = 1037;
    pub(crate) const FILEUSERNAME: u32 = 1039;
    pub(crate) const FILEGROUPNAME: u32 = 1040;
    pub(crate) const DIRINDEXES: u32 = 1116;
    pub(crate) const BASENAMES: u32 = 1117;
    pub(crate) const DIRNAMES: u32 = 1118;
    /// Every tag that holds a script run on install, removal, or a trigger: `%pre`,
    /// `%post`, `%preun`, `%postun`, `%verifyscript`, triggers, `%pretrans`, `%posttrans`,
    /// and the file triggers.
    pub(crate) const SCRIPTS: [u32; 12] = [
        1023, 1024, 1025, 1026, 1079, 1065, 1151, 1152, 5020, 5021, 5066, 5067,
    ];
}

/// The file flag of a config file (`%config`).
pub(crate) const FILE_CONFIG: u64 = 1;
/// The file flag of documentation (`%doc`).
pub(crate) const FILE_DOC: u64 = 1 << 1;
/// The file flag of a license (`%license`).
pub(crate) const FILE_LICENSE: u64 = 1 << 7;

/// A value of the header.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Ints(Vec<u64>),
    Strings(Vec<String>),
    Bytes(Vec<u8>),
}

/// The main header's tags and values.
#[derive(Debug)]
pub(crate) struct Header(BTreeMap<u32, Value>);

/// One file of the package.
#[derive(Debug, PartialEq)]
pub(crate) struct File {
    pub(crate) path: String,
    pub(crate) mode: u64,
    pub(crate) flags: u64,
    pub(crate) owner: (String, String),
}

impl Header {
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&bytes).map_err(|e| format!("{}: not an RPM we can read: {e}", path.display()))
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.get(..4) != Some(&[0xed, 0xab, 0xee, 0xdb]) {
            return Err("no RPM lead".into());
        }
        let (_, signature_end) = parse_header(bytes, 96)?;
        let (header, _) = parse_header(bytes, signature_end.next_multiple_of(8))?;
        Ok(Self(header))
    }

    pub(crate) fn get(&self, tag: u32) -> Option<&Value> {
        self.0.get(&tag)
    }

    /// A string tag's value.
    pub(crate) fn string(&self, tag: u32) -> Option<&str> {
        match self.get(tag) {
            Some(Value::Strings(s)) => s.first().map(String::as_str),
            _ => None,
        }
    }

    fn strings(&self, tag: u32) -> &[String] {
        match self.get(tag) {
            Some(Value::Strings(s)) => s,
            _ => &[],
        }
    }

    fn ints(&self, tag: u32) -> &[u64] {
        match self.get(tag) {
            Some(Value::Ints(i)) => i,
            _ => &[],
        }
    }

    /// The files, in the header's order.
    pub(crate) fn files(&self) -> Result<Vec<File>, String> {
        let names = self.strings(tag::BASENAMES);
        let dirs = self.strings(tag::DIRNAMES);
        let indexes = self.ints(tag::DIRINDEXES);
        let modes = self.ints(tag::FILEMODES);
        let flags = self.ints(tag::FILEFLAGS);
        let users = self.strings(tag::FILEUSERNAME);
        let groups = self.strings(tag::FILEGROUPNAME);
        let count = names.len();
        let lengths = [
            indexes.len(),
            modes.len(),
            flags.len(),
            users.len(),
            groups.len(),
        ];
        if lengths.iter().any(|l| *l != count) {
            return Err(format!(
                "file tags of unequal lengths: {count} names, {lengths:?}"
            ));
        }
        (0..count)
            .map(|i| {
                let dir = usize::try_from(indexes[i])
                    .ok()
                    .and_then(|d| dirs.get(d))
                    .ok_or_else(|| format!("file {i}: no directory {}", indexes[i]))?;
                Ok(File {
                    path: format!("{dir}{}", names[i]),
                    mode: modes[i],
                    flags: flags[i],
                    owner: (users[i].clone(), groups[i].clone()),
                })
            })
            .collect()
    }

    /// The tags of [`tag::SCRIPTS`] the package has.
    pub(crate) fn scripts(&self) -> Vec<u32> {
        tag::SCRIPTS
            .into_iter()
            .filter(|t| self.0.contains_key(t))
            .collect()
    }
}

/// Reads the header at `at`: its tags, and where it ends.
fn parse_header(bytes: &[u8], at: usize) -> Result<(BTreeMap<u32, Value>, usize), String> {
    let u32_at = |offset: usize| -> Result<u32, String> {
        bytes
            .get(offset..offset + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("cut short at byte {offset}"))
    };
    if bytes.get(at..at + 4) != Some(&[0x8e, 0xad, 0xe8, 0x01]) {
        return Err(format!("no header magic at byte {at}"));
    }
    let entries = u32_at(at + 8)? as usize;
    let size = u32_at(at + 12)? as usize;
    let store = at + 16 + entries * 16;
    let end = store + size;
    let data = bytes.get(store..end).ok_or("header data cut short")?;
    let mut tags = BTreeMap::new();
    for entry in 0..entries {
        let base = at + 16 + entry * 16;
        let (tag, kind) = (u32_at(base)?, u32_at(base + 4)?);
        let (offset, count) = (u32_at(base + 8)? as usize, u32_at(base + 12)? as usize);
        let value = value(data, kind, offset, count).map_err(|e| format!("tag {tag}: {e}"))?;
        tags.insert(tag, value);
    }
    Ok((tags, end))
}

/// The value of an entry of type `kind` at `offset` in the header's data.
fn value(data: &[u8], kind: u32, offset: usize, count: usize) -> Result<Value, String> {
    let rest = data.get(offset..).ok_or("offset past the data")?;
    let ints = |width: usize| -> Result<Value, String> {
        let bytes = rest.get(..width * count).ok_or("integers cut short")?;
        Ok(Value::Ints(
            bytes
                .chunks(width)
                .map(|c| c.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
                .collect(),
        ))
    };
    match kind {
        1 | 2 => ints(1),
        3 => ints(2),
        4 => ints(4),
        5 => ints(8),
        6 | 8 | 9 => {
            // A string is one value; an array or an i18n string, `count` of them.
            let wanted = if kind == 6 { 1 } else { count };
            let strings: Vec<String> = rest
                .split(|b| *b == 0)
                .take(wanted)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            if strings.len() < wanted {
                return Err("strings cut short".into());
            }
            Ok(Value::Strings(strings))
        }
        7 => Ok(Value::Bytes(
            rest.get(..count).ok_or("bytes cut short")?.to_vec(),
        )),
        other => Err(format!("unknown type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header of the given `(tag, type, data)` entries, each entry's data at its own
    /// offset.
    fn header(entries: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, count, bytes) in entries {
            for n in [*tag, *kind, data.len() as u32, *count] {
                index.extend(n.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut out = vec![0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
        out.extend((entries.len() as u32).to_be_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    #[test]
    fn files_config_flags_and_scripts_are_read() {
        let mut rpm = vec![0xed, 0xab, 0xee, 0xdb];
        rpm.resize(96, 0);
        // A signature of 3 bytes of data: the main header starts at the next multiple of 8.
        rpm.extend(header(&[(1000, 7, 3, b"abc")]));
        rpm.resize(rpm.len().next_multiple_of(8), 0);
        rpm.extend(header(&[
            (tag::NAME, 6, 1, b"whmtoken\0"),
            (tag::BASENAMES, 8, 2, b"whmtoken\0whmtoken.toml\0"),
            (tag::DIRNAMES, 8, 2, b"/usr/sbin/\0/etc/\0"),
            (tag::DIRINDEXES, 4, 2, &[0, 0, 0, 0, 0, 0, 0, 1]),
            (tag::FILEMODES, 3, 2, &[0x81, 0xed, 0x81, 0xa4]),
            (tag::FILEFLAGS, 4, 2, &[0, 0, 0, 0, 0, 0, 0, 0x11]),
            (tag::FILEUSERNAME, 8, 2, b"root\0root\0"),
            (tag::FILEGROUPNAME, 8, 2, b"root\0root\0"),
            (1024, 6, 1, b"echo installed\0"),
        ]));
        let header = Header::parse(&rpm).unwrap();
        assert_eq!(header.string(tag::NAME), Some("whmtoken"));
        let files = header.files().unwrap();
        let root = ("root".to_owned(), "root".to_owned());
        assert_eq!(
            files,
            [
                File {
                    path: "/usr/sbin/whmtoken".into(),
                    mode: 0o100755,
                    flags: 0,
                    owner: root.clone()
                },
                File {
                    path: "/etc/whmtoken.toml".into(),
                    mode: 0o100644,
                    flags: 0x11,
                    owner: root
                },
            ]
        );
        assert_eq!(files[1].flags & FILE_CONFIG, FILE_CONFIG);
        assert_eq!(header.scripts(), [1024]);
        assert!(Header::parse(&rpm[..rpm.len() - 1]).is_err());
        assert!(Header::parse(b"not an rpm").is_err());
    }
}
