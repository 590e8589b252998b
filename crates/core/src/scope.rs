//! Scopes: what a key may do. The seed defines exactly two.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The permission level of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Grants access to ready-to-use models, and nothing else.
    #[serde(rename = "API")]
    Api,
    /// Grants full access: the SDK, CLI operations, keys, apps and models.
    #[serde(rename = "ADMIN")]
    Admin,
}

impl Scope {
    /// The spelling used on the wire, in the CLI and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "API",
            Scope::Admin => "ADMIN",
        }
    }

    /// Whether this scope may call ready-to-use models (both may).
    pub fn may_call_models(self) -> bool {
        true
    }

    /// Whether this scope may perform administrative operations.
    pub fn is_admin(self) -> bool {
        matches!(self, Scope::Admin)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope text was neither `ADMIN` nor `API`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected ADMIN or API")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    /// Accepts `ADMIN` and `API` in any letter case, as users type them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("ADMIN") {
            Ok(Scope::Admin)
        } else if s.eq_ignore_ascii_case("API") {
            Ok(Scope::Api)
        } else {
            Err(UnknownScope(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings_and_refuses_others() {
        assert_eq!("ADMIN".parse::<Scope>(), Ok(Scope::Admin));
        assert_eq!("api".parse::<Scope>(), Ok(Scope::Api));
        assert!("ROOT".parse::<Scope>().is_err());
        assert_eq!(Scope::Admin.to_string(), "ADMIN");
        assert!(Scope::Admin.is_admin() && !Scope::Api.is_admin());
    }
}
