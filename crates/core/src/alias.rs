//! A key's alias, checked once when it enters the system (the REST API,
//! the dashboard, the CLI) and carried as a type from then on.
//!
//! An alias is shown to people (dashboard, `fal key list`), so it must not
//! be able to disguise itself: control characters, bidirectional overrides
//! and isolates (which reorder what follows them, "Trojan Source") and
//! zero-width characters (which make two different aliases look the same)
//! are refused with a message that names the character.

use std::fmt;

/// Longest alias accepted, in characters.
pub const MAX_ALIAS_CHARS: usize = 255;

/// Why an alias was refused; its message says what to fix (it is what a
/// 422, the dashboard and the CLI say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Too long: this many characters.
    #[error("alias is {0} characters long; the limit is {MAX_ALIAS_CHARS}")]
    TooLong(usize),
    /// Holds a character that can disguise text.
    #[error(
        "alias contains U+{code:04X} ({kind}), which can disguise text: remove it \
         (aliases may not hold control, bidirectional or zero-width characters)",
        code = u32::from(*.ch)
    )]
    Forbidden {
        /// The character.
        ch: char,
        /// What kind of character it is, for people.
        kind: &'static str,
    },
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

/// A checked alias: at most [`MAX_ALIAS_CHARS`] characters, surrounding
/// whitespace trimmed, none of the characters [`Alias::parse`] refuses.
/// The empty alias is allowed (a key need not have one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Alias(String);

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

impl AsRef<str> for Alias {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Alias> for String {
    fn from(a: Alias) -> String {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every character the rule refuses by name, one of each kind at least.
    const DISGUISING: [char; 18] = [
        '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{200C}', '\u{200D}',
        '\u{200E}', '\u{200F}', '\u{2060}', '\u{FEFF}', '\u{061C}', '\u{2028}', '\u{2029}', '\0',
        '\n', '\u{7F}', '\u{85}',
    ];

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
        for c in DISGUISING {
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

    #[test]
    fn messages_say_what_to_fix() {
        assert_eq!(
            Alias::parse("a\u{202E}b").unwrap_err().to_string(),
            "alias contains U+202E (a bidirectional override or embedding), which can disguise \
             text: remove it (aliases may not hold control, bidirectional or zero-width characters)"
        );
        assert_eq!(
            AliasError::TooLong(300).to_string(),
            "alias is 300 characters long; the limit is 255"
        );
    }

    #[test]
    fn aliases_display_as_kept() {
        let alias = Alias::parse(" laptop ").unwrap();
        assert_eq!(alias.to_string(), "laptop");
        assert_eq!(alias.as_ref(), "laptop");
        assert_eq!(String::from(alias), "laptop");
    }

    proptest! {
        #[test]
        fn a_disguising_character_anywhere_is_refused(
            head in "[a-z ]{0,20}",
            c in prop::sample::select(DISGUISING.to_vec()),
            tail in "[a-z ]{0,20}",
        ) {
            let err = Alias::parse(&format!("x{head}{c}{tail}x")).unwrap_err();
            let refused = matches!(err, AliasError::Forbidden { ch, .. } if ch == c);
            prop_assert!(refused, "{:?} was not refused by name: {}", c, err);
        }

        #[test]
        fn accepted_aliases_are_trimmed_and_parse_again_unchanged(s in "\\PC{0,300}") {
            if let Ok(alias) = Alias::parse(&s) {
                prop_assert_eq!(alias.as_str(), s.trim());
                prop_assert_eq!(Alias::parse(alias.as_str()), Ok(alias.clone()));
            }
        }

        #[test]
        fn length_alone_decides_for_plain_text(n in 0usize..400) {
            let s = "é".repeat(n);
            prop_assert_eq!(Alias::parse(&s).is_ok(), n <= MAX_ALIAS_CHARS);
        }
    }
}
