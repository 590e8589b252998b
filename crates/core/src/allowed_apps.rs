//! The apps a short-lived token may call: each entry `NAME` (any owner's
//! app of that name, as fal's clients send the app's alias) or
//! `OWNER/NAME` (that app only). Checked once, when a token is minted.

use std::fmt;
use std::sync::Arc;

use crate::app_name::{AppName, AppOwner};

/// Most entries one token may list.
pub const MAX_ALLOWED_APPS: usize = 100;

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Any owner's app of this name.
    Name(AppName),
    /// This owner's app of this name.
    Full(AppOwner, AppName),
}

/// A non-empty list of apps a caller is restricted to.
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedApps(Arc<[Entry]>);

impl fmt::Debug for AllowedApps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

/// Why a list of apps was refused; the message says what to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedAppsError {
    /// No entries.
    #[error("allowed_apps must list at least one app, e.g. [\"echo\"] or [\"fal-ai/echo\"]")]
    Empty,
    /// Too many entries.
    #[error("allowed_apps lists {0} apps; the limit is {MAX_ALLOWED_APPS}")]
    TooMany(usize),
    /// An entry that is not `NAME` or `OWNER/NAME`.
    #[error("allowed_apps entry {entry:?}: {why}")]
    Bad {
        /// The entry.
        entry: String,
        /// What is wrong with it.
        why: String,
    },
}

fn parse_entry(s: &str) -> Result<Entry, AllowedAppsError> {
    let bad = |why: String| AllowedAppsError::Bad {
        entry: s.to_owned(),
        why,
    };
    match s.split_once('/') {
        None => AppName::parse(s)
            .map(Entry::Name)
            .map_err(|e| bad(e.to_string())),
        Some((owner, name)) => {
            if name.contains('/') {
                return Err(bad("use NAME or OWNER/NAME".into()));
            }
            let owner = AppOwner::parse(owner).map_err(|e| bad(e.to_string()))?;
            let name = AppName::parse(name).map_err(|e| bad(e.to_string()))?;
            Ok(Entry::Full(owner, name))
        }
    }
}

impl AllowedApps {
    /// The list `entries` stand for, or why not.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedApps, AllowedAppsError> {
        if entries.is_empty() {
            return Err(AllowedAppsError::Empty);
        }
        if entries.len() > MAX_ALLOWED_APPS {
            return Err(AllowedAppsError::TooMany(entries.len()));
        }
        let parsed = entries
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowedApps(parsed.into()))
    }

    /// Whether the app `owner/name` is on the list.
    pub fn allows(&self, owner: &str, name: &str) -> bool {
        self.0.iter().any(|e| match e {
            Entry::Name(n) => n.as_ref() == name,
            Entry::Full(o, n) => o.as_ref() == owner && n.as_ref() == name,
        })
    }

    /// The entries as they were given (`NAME` or `OWNER/NAME`).
    pub fn entries(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|e| match e {
            Entry::Name(n) => n.to_string(),
            Entry::Full(o, n) => format!("{o}/{n}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_matches_any_owner_and_a_full_name_one() {
        let a = AllowedApps::parse(&["echo", "acme/tts"]).unwrap();
        assert!(a.allows("fal-ai", "echo"));
        assert!(a.allows("acme", "echo"));
        assert!(a.allows("acme", "tts"));
        assert!(!a.allows("other", "tts"));
        assert!(!a.allows("fal-ai", "echo2"));
        assert_eq!(a.entries().collect::<Vec<_>>(), ["echo", "acme/tts"]);
    }

    #[test]
    fn refuses_empty_and_malformed_entries() {
        let none: [&str; 0] = [];
        assert_eq!(AllowedApps::parse(&none), Err(AllowedAppsError::Empty));
        for bad in ["", "a/b/c", "/echo", "Echo", "fal-ai/", "a b"] {
            let e = AllowedApps::parse(&[bad]).unwrap_err();
            assert!(e.to_string().contains("allowed_apps entry"), "{bad}: {e}");
        }
        let many = vec!["echo"; MAX_ALLOWED_APPS + 1];
        assert!(matches!(
            AllowedApps::parse(&many),
            Err(AllowedAppsError::TooMany(_))
        ));
    }
}
