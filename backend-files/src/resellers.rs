//! `var/cpanel/resellers`: who is a reseller, with which ACLs (reference 3.1).

use std::collections::BTreeMap;

/// Parses the file as cPanel's reader does: spaces and tabs removed, the name before the
/// first `:`, the ACLs after it separated by `,`. Lines with no `:`, an empty name or a
/// leading `#` are skipped; the skipped non-blank lines are returned with their numbers.
pub(crate) fn parse(text: &str) -> (BTreeMap<String, Vec<String>>, crate::BadLines) {
    let mut resellers = BTreeMap::new();
    let mut skipped = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line: String = raw.chars().filter(|c| *c != ' ' && *c != '\t').collect();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, acls)) = line.split_once(':') else {
            skipped.push((index + 1, "no “:” after the user name".to_owned()));
            continue;
        };
        if name.is_empty() {
            skipped.push((index + 1, "the user name is empty".to_owned()));
            continue;
        }
        if line.contains(char::REPLACEMENT_CHARACTER) {
            skipped.push((index + 1, "not valid UTF-8".to_owned()));
            continue;
        }
        let acls = acls
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        resellers.insert(name.to_owned(), acls);
    }
    (resellers, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_cpanels_reader() {
        let (resellers, skipped) = parse(
            "res2:list-accts, create-acct\n\
             # comment\n\
             res1:\n\
             \tres3 :all\n\
             nocolon\n\
             :orphan\n",
        );
        let names: Vec<&str> = resellers.keys().map(String::as_str).collect();
        assert_eq!(names, ["res1", "res2", "res3"]);
        assert_eq!(resellers["res2"], ["list-accts", "create-acct"]);
        assert!(resellers["res1"].is_empty());
        assert_eq!(resellers["res3"], ["all"]);
        assert_eq!(skipped.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [5, 6]);
    }
}
