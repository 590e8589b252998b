//! A key's alias: the one check the REST API and the dashboard share.
//!
//! An alias is shown to people (dashboard, `fal key list`), so it must not
//! be able to disguise itself: control characters, bidirectional overrides
//! and isolates (which reorder what follows them, "Trojan Source") and
//! zero-width characters (which make two different aliases look the same)
//! are refused with a message that names the character.

use std::fmt;

/// Longest alias accepted, in characters.
pub const MAX_ALIAS_CHARS: usize = 255;

/// A checked alias: at most [`MAX_ALIAS_CHARS`] characters, surrounding
/// whitespace trimmed, none of the characters [`Alias::parse`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias(String);

/// Why an alias was refused; its `Display` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasError {
    /// Too long.
    TooLong(usize),
    /// Holds a character that can disguise text.
    Forbidden {
        /// The character.
        ch: char,
        /// What kind of character it is, for people.
        kind: &'static str,
    },
}

impl fmt::Display for AliasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AliasError::TooLong(n) => write!(
                f,
                "alias is {n} characters long; the limit is {MAX_ALIAS_CHARS}"
            ),
            AliasError::Forbidden { ch, kind } => write!(
                f,
                "alias contains U+{:04X} ({kind}), which can disguise text: remove it \
                 (aliases may not hold control, bidirectional or zero-width characters)",
                u32::from(*ch)
            ),
        }
    }
}

/// What kind of refused character `c` is, or `None` when it is allowed.
fn forbidden(c: char) -> Option<&'static str> {
    match c {
        '\u{202A}'..='\u{202E}' => Some("a bidirectional override or embedding"),
        '\u{2066}'..='\u{2069}' => Some("a bidirectional isolate"),
        '\u{061C}' | '\u{200E}' | '\u{200F}' => Some("a bidirectional mark"),
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => Some("a zero-width character"),
        '\u{2028}' | '\u{2029}' => Some("a line or paragraph separator"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

impl Alias {
    /// Checks an alias as typed; surrounding whitespace is dropped.
    pub fn parse(raw: &str) -> Result<Alias, AliasError> {
        let alias = raw.trim();
        let n = alias.chars().count();
        if n > MAX_ALIAS_CHARS {
            return Err(AliasError::TooLong(n));
        }
        if let Some((ch, kind)) = alias.chars().find_map(|c| forbidden(c).map(|k| (c, k))) {
            return Err(AliasError::Forbidden { ch, kind });
        }
        Ok(Alias(alias.to_owned()))
    }

    /// The alias.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The alias, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_of_any_script_passes_trimmed() {
        for ok in [
            "ci runner",
            "",
            "ключ для CI",
            "مفتاح",
            "🔑 laptop",
            "a{{csrf}}",
        ] {
            assert_eq!(Alias::parse(&format!("  {ok} ")).unwrap().as_str(), ok);
        }
        assert!(Alias::parse(&"y".repeat(255)).is_ok());
        assert_eq!(
            Alias::parse(&"y".repeat(256)),
            Err(AliasError::TooLong(256))
        );
    }

    #[test]
    fn disguising_characters_are_refused_by_name() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{200C}', '\u{200D}',
            '\u{200E}', '\u{200F}', '\u{2060}', '\u{FEFF}', '\u{061C}', '\u{2028}', '\0', '\n',
            '\u{7F}', '\u{85}',
        ] {
            let err = Alias::parse(&format!("a{c}b")).unwrap_err();
            assert!(
                matches!(err, AliasError::Forbidden { ch, .. } if ch == c),
                "{c:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("U+{:04X}", u32::from(c))) && msg.contains("remove it"),
                "{msg}"
            );
        }
    }
}
