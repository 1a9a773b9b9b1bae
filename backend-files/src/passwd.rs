//! `etc/passwd`: each user's uid and home folder.

use std::collections::HashMap;

/// What the backend needs of one passwd line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    pub uid: u32,
    /// The primary group; `None` when the field is not a number.
    pub gid: Option<u32>,
    /// Absolute, as written in the file (`/home/bob`).
    pub home: String,
}

/// Parses the file. Lines that cannot be used are returned as (line number, reason) so the
/// caller can report them; the rest is used.
pub(crate) fn parse(text: &str) -> (HashMap<String, Account>, crate::BadLines) {
    let mut accounts = HashMap::new();
    let mut skipped = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            // The first entry wins, as getpwnam's does.
            Ok((name, account)) => {
                accounts.entry(name.to_owned()).or_insert(account);
            }
            Err(reason) => skipped.push((index + 1, reason)),
        }
    }
    (accounts, skipped)
}

fn parse_line(line: &str) -> Result<(&str, Account), String> {
    let fields: Vec<&str> = line.split(':').collect();
    let [name, _password, uid, gid, _gecos, home, _shell] = fields[..] else {
        return Err(format!(
            "expected 7 fields separated by “:”, found {}",
            fields.len()
        ));
    };
    if name.is_empty() {
        return Err("the user name is empty".to_owned());
    }
    if [name, uid, home]
        .iter()
        .any(|f| f.contains(char::REPLACEMENT_CHARACTER))
    {
        return Err("the name, uid or home is not valid UTF-8".to_owned());
    }
    let uid = uid
        .parse()
        .map_err(|_| format!("uid “{}” is not a number", uid.escape_debug()))?;
    if !home.starts_with('/') {
        return Err(format!(
            "home “{}” is not an absolute path",
            home.escape_debug()
        ));
    }
    Ok((
        name,
        Account {
            uid,
            gid: gid.parse().ok(),
            home: home.to_owned(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uid_and_home_and_reports_bad_lines() {
        let (accounts, skipped) = parse(
            "root:x:0:0:root:/root:/bin/bash\n\
             bob:x:1001:1001::/home/bob:/bin/bash\n\
             broken line\n\
             eve:x:notanumber:1::/home/eve:/bin/sh\n\
             rel:x:5:5::home/rel:/bin/sh\n\
             bob:x:2002:2002::/home2/bob:/bin/bash\n",
        );
        assert_eq!(
            accounts["bob"],
            Account {
                uid: 1001,
                gid: Some(1001),
                home: "/home/bob".into()
            }
        );
        assert_eq!(accounts["root"].uid, 0);
        assert_eq!(accounts.len(), 2);
        let lines: Vec<usize> = skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [3, 4, 5]);
    }
}
