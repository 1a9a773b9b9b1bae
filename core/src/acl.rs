//! WHM ACL names and what a user holds (reference 3.1 and 3.3).

use std::collections::BTreeSet;

/// The built-in WHM ACLs of cPanel & WHM v11.120, excluding `all` (which stands for them all).
pub const BUILTIN_ACLS: [&str; 63] = [
    // basic / initial privileges
    "acct-summary",
    "basic-system-info",
    "basic-whm-functions",
    "connected-applications",
    "cors-proxy-get",
    "cpanel-api",
    "cpanel-integration",
    "create-user-session",
    "digest-auth",
    "generate-email-config",
    "list-pkgs",
    "manage-api-tokens",
    "manage-dns-records",
    "manage-oidc",
    "manage-styles",
    "mysql-info",
    "ns-config",
    "public-contact",
    "ssl-info",
    "track-email",
    // standard
    "list-accts",
    "show-bandwidth",
    "create-acct",
    "kill-acct",
    "suspend-acct",
    "upgrade-account",
    "ssl",
    "ssl-buy",
    "ssl-gencrt",
    "edit-mx",
    "passwd",
    "file-restore",
    "create-dns",
    "kill-dns",
    "park-dns",
    "edit-dns",
    "add-pkg",
    "edit-pkg",
    "thirdparty",
    "mailcheck",
    "news",
    "assign-root-account-enhancements",
    // package privileges
    "allow-shell",
    "viewglobalpackages",
    "allow-addoncreate",
    "allow-parkedcreate",
    "add-pkg-ip",
    "add-pkg-shell",
    "allow-unlimited-pkgs",
    "allow-emaillimits-pkgs",
    "allow-unlimited-disk-pkgs",
    "allow-unlimited-bw-pkgs",
    // global
    "status",
    "stats",
    "restart",
    "resftp",
    // super
    "edit-account",
    "limit-bandwidth",
    "quota",
    "demo-setup",
    "rearrange-accts",
    "clustering",
    "locale-edit",
];

/// The ACL that stands for every privilege (root access).
pub const ALL: &str = "all";

/// An ACL that lets a token open sessions that escape the token's own restrictions.
pub const CREATE_USER_SESSION: &str = "create-user-session";

/// What a WHM user may do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Privileges {
    /// Root, or a reseller granted `all`: every ACL.
    All,
    /// A reseller's own list.
    Acls(BTreeSet<String>),
}

impl Privileges {
    /// A reseller's privileges from its ACL list; `all` anywhere in it means everything.
    pub fn from_list<I: IntoIterator<Item = S>, S: Into<String>>(acls: I) -> Self {
        let set: BTreeSet<String> = acls.into_iter().map(Into::into).collect();
        if set.contains(ALL) {
            Self::All
        } else {
            Self::Acls(set)
        }
    }

    /// Whether a token may be granted `acl`: root-level users hold every built-in ACL, a
    /// reseller holds exactly its list.
    pub fn holds(&self, acl: &str) -> bool {
        match self {
            Self::All => BUILTIN_ACLS.contains(&acl),
            Self::Acls(set) => set.contains(acl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_list_has_no_duplicates() {
        let set: BTreeSet<_> = BUILTIN_ACLS.iter().collect();
        assert_eq!(set.len(), BUILTIN_ACLS.len());
        assert!(!set.contains(&ALL));
    }

    #[test]
    fn all_in_a_reseller_line_means_everything() {
        assert_eq!(
            Privileges::from_list(["list-accts", "all"]),
            Privileges::All
        );
        let reseller = Privileges::from_list(["list-accts"]);
        assert!(reseller.holds("list-accts"));
        assert!(!reseller.holds("clustering"));
        assert!(Privileges::All.holds("clustering"));
        assert!(!Privileges::All.holds("no-such-acl"));
    }
}
