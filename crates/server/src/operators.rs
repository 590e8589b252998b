//! Operators: the users who manage every app and every user.
//!
//! An operator is the bootstrap admin user, or a GitHub user named in
//! `--operators` (`FAL_OPERATORS`) by login or by numeric GitHub id. An
//! entry of digits only is an id (GitHub ids never change; logins can be
//! renamed and then taken by someone else, so ids are the safer choice).
//! Users without a GitHub account other than the bootstrap user are never
//! operators by login. A disabled user is never an operator.
//!
//! The answer for one user is cached for `max_staleness`, like key records:
//! the gateway asks when it opens a connection to an upstream on an
//! internal address.

use std::sync::Arc;
use std::time::Duration;

use fal_core::{Clock, Timestamp, UserId};
use fal_store::{StoreError, User, Users};

/// The `--operators` list, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorList {
    /// GitHub logins, lowercase.
    logins: Vec<String>,
    /// GitHub numeric ids.
    ids: Vec<i64>,
}

impl OperatorList {
    /// Parses entries (a login or a numeric GitHub id each; blanks skipped).
    pub fn parse(entries: &[String]) -> Result<OperatorList, String> {
        let mut list = OperatorList::default();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if e.bytes().all(|b| b.is_ascii_digit()) {
                let id = e
                    .parse()
                    .map_err(|_| format!("operator id {e:?} is too large for a GitHub id"))?;
                list.ids.push(id);
            } else if e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                list.logins.push(e.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "operator {e:?} is neither a GitHub login (letters, digits, '-') nor a numeric GitHub id"
                ));
            }
        }
        Ok(list)
    }

    /// Whether the list names this GitHub user.
    pub fn names(&self, user: &User) -> bool {
        match user.github_id {
            None => false,
            Some(id) => {
                self.ids.contains(&id)
                    || self
                        .logins
                        .iter()
                        .any(|l| l.eq_ignore_ascii_case(&user.nickname))
            }
        }
    }
}

/// Decides who is an operator.
pub struct Operators {
    /// `--operators`.
    list: OperatorList,
    /// The bootstrap admin user, always an operator.
    bootstrap: Option<UserId>,
    /// Users, to read logins, GitHub ids and whether disabled.
    users: Arc<dyn Users>,
    /// user id → (operator?, when decided).
    cache: quick_cache::sync::Cache<UserId, (bool, Timestamp)>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// How long a cached answer is trusted.
    max_staleness_ms: i64,
}

impl Operators {
    /// Operators from `list`, plus `bootstrap`.
    pub fn new(
        list: OperatorList,
        bootstrap: Option<UserId>,
        users: Arc<dyn Users>,
        clock: Arc<dyn Clock>,
        max_staleness: Duration,
    ) -> Operators {
        Operators {
            list,
            bootstrap,
            users,
            cache: quick_cache::sync::Cache::new(10_000),
            clock,
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Whether `user_id` is the bootstrap admin user.
    pub fn is_bootstrap(&self, user_id: &UserId) -> bool {
        self.bootstrap.as_ref() == Some(user_id)
    }

    /// Whether `user_id` is an operator now.
    pub async fn is_operator(&self, user_id: &UserId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        if let Some((yes, at)) = self.cache.get(user_id)
            && now.millis().saturating_sub(at.millis()) <= self.max_staleness_ms
        {
            return Ok(yes);
        }
        let yes = match self.users.user(user_id).await? {
            None => false,
            Some(u) => {
                (self.is_bootstrap(user_id) || self.list.names(&u))
                    && self.users.disabled_at(user_id).await?.is_none()
            }
        };
        self.cache.insert(user_id.clone(), (yes, now));
        Ok(yes)
    }

    /// Forgets a cached answer (after the user was disabled).
    pub fn invalidate(&self, user_id: &UserId) {
        self.cache.remove(user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gh(login: &str, id: Option<i64>) -> User {
        User {
            user_id: UserId::from_stored("u".into()),
            nickname: login.into(),
            full_name: String::new(),
            github_id: id,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn entries_are_logins_or_ids() {
        let list = OperatorList::parse(&[" Alice ".into(), "4242".into(), String::new()]).unwrap();
        assert!(list.names(&gh("alice", Some(1))));
        assert!(list.names(&gh("ALICE", Some(1))));
        assert!(list.names(&gh("renamed", Some(4242))));
        assert!(!list.names(&gh("bob", Some(2))));
        // A user without a GitHub account is not an operator by login.
        assert!(!list.names(&gh("alice", None)));
        // Digits only are an id, never a login.
        assert!(!list.names(&gh("4242", Some(7))));
        assert!(OperatorList::parse(&["a b".into()]).is_err());
        assert!(OperatorList::parse(&["99999999999999999999999".into()]).is_err());
    }
}
