//! An app's `owner` and `name`, each checked once when it enters the
//! system (the REST API, the CLI) and carried as a type from then on.
//!
//! Both follow one rule: 1 to 64 of `a-z 0-9 - _ .`, starting with a letter
//! or digit. They are two types so that an owner cannot be passed where a
//! name is expected, and so that a refusal says which of the two it was.

use std::fmt;

/// The longest owner or name.
pub const MAX_APP_PART_LEN: usize = 64;

/// An owner or name that breaks the rule; its message names the part and
/// the rule (it is what a 422 and the CLI say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{part} {value:?} must be 1 to 64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
)]
pub struct AppPartError {
    /// `"owner"` or `"name"`.
    part: &'static str,
    /// What was given.
    value: String,
}

/// Whether `s` may be an app's owner or name.
fn follows_rule(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.len() <= MAX_APP_PART_LEN
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

/// `s` as a part called `part`, or why not.
fn parse_part(part: &'static str, s: &str) -> Result<String, AppPartError> {
    if follows_rule(s) {
        Ok(s.to_owned())
    } else {
        Err(AppPartError {
            part,
            value: s.to_owned(),
        })
    }
}

macro_rules! app_part {
    ($(#[$doc:meta])* $ty:ident, $part:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $ty(String);

        impl $ty {
            #[doc = concat!("Checks `s` as an app's ", $part, ".")]
            pub fn parse(s: &str) -> Result<$ty, AppPartError> {
                parse_part($part, s).map($ty)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
    };
}

app_part!(
    /// An app's owner (its namespace), such as `fal-ai`.
    AppOwner,
    "owner"
);
app_part!(
    /// An app's name within its owner, such as `echo`.
    AppName,
    "name"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_rule_holds_at_its_edges() {
        for ok in ["a", "0", "fal-ai", "sdxl_1.0", "a-", &"a".repeat(64)] {
            assert_eq!(AppName::parse(ok).unwrap().as_ref(), ok);
        }
        for bad in [
            "",
            "-a",
            "_a",
            ".a",
            "A",
            "aB",
            "a/b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
            assert!(AppOwner::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_name_the_part_and_the_rule() {
        assert_eq!(
            AppOwner::parse("Acme").unwrap_err().to_string(),
            "owner \"Acme\" must be 1 to 64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
        );
        assert!(
            AppName::parse("")
                .unwrap_err()
                .to_string()
                .starts_with("name \"\" must be")
        );
    }

    #[test]
    fn parts_display_as_given() {
        let owner = AppOwner::parse("fal-ai").unwrap();
        assert_eq!(owner.to_string(), "fal-ai");
        assert_eq!(String::from(owner), "fal-ai");
    }

    proptest! {
        #[test]
        fn well_formed_parts_are_kept_as_given(s in "[a-z0-9][a-z0-9._-]{0,63}") {
            let (owner, name) = (AppOwner::parse(&s).unwrap(), AppName::parse(&s).unwrap());
            prop_assert_eq!(owner.as_ref(), s.as_str());
            prop_assert_eq!(name.as_ref(), s.as_str());
        }

        #[test]
        fn a_character_outside_the_set_is_refused(
            head in "[a-z0-9]{1,30}",
            bad in "[^a-z0-9._-]",
            tail in "[a-z0-9]{0,30}",
        ) {
            let s = format!("{head}{bad}{tail}");
            prop_assert!(AppName::parse(&s).is_err());
        }

        #[test]
        fn too_long_is_refused(s in "[a-z0-9]{65,100}") {
            prop_assert!(AppOwner::parse(&s).is_err());
        }

        #[test]
        fn arbitrary_text_is_accepted_only_if_it_follows_the_rule(s in ".{0,80}") {
            let accepted = AppName::parse(&s).is_ok();
            let expected = !s.is_empty()
                && s.len() <= 64
                && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            prop_assert_eq!(accepted, expected);
        }
    }
}
