//! Key ids, key secrets and the `FAL_KEY` form `<id>:<secret>`
//! ([`fal_core::KeyId`], [`fal_core::KeySecret::parse`],
//! [`fal_core::header::parse_key_pair`]): each refusal is the error a
//! simple reading of the format names, what parses renders back to
//! itself, a secret never shows in `Debug`, and a one-digit typo in a valid
//! secret is always caught.

use fal_core::header::parse_key_pair;
use fal_core::key::{InvalidKeyId, SECRET_LEN, SECRET_PREFIX};
use fal_core::{HeaderError, KeyFormatError, KeyId, KeySecret};

use super::seeded;

/// Checks `data` as a secret, a key id and a pair, then a valid pair made
/// from it and a typo in its secret.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    secret(&text);
    key_id(&text);
    pair(&text);
    let (id, valid, rest) = seeded::pair(data);
    let exposed = valid.expose();
    assert!(
        KeySecret::parse(exposed).is_ok(),
        "a minted secret is refused"
    );
    secret(exposed);
    for form in [
        id.to_string(),
        id.to_string().to_uppercase(),
        id.as_uuid().simple().to_string(),
    ] {
        assert_eq!(form.parse::<KeyId>().ok(), Some(id), "{form:?}");
        pair(&format!("{form}:{exposed}"));
    }
    // One digit after the prefix changed: the checksum catches it.
    if let [at, digit, ..] = rest {
        let at = SECRET_PREFIX.len() + usize::from(*at) % (SECRET_LEN - SECRET_PREFIX.len());
        let new = b"0123456789abcdef"[usize::from(*digit % 16)];
        let mut typo = exposed.as_bytes().to_vec();
        if typo[at] != new {
            typo[at] = new;
            let typo = String::from_utf8_lossy(&typo);
            assert_eq!(
                KeySecret::parse(&typo).err(),
                Some(KeyFormatError::Checksum),
                "a typo at {at} got through"
            );
        }
    }
}

/// The error a plain reading of the format gives `s`, if any but the
/// checksum's.
fn expected_format_error(s: &str) -> Option<KeyFormatError> {
    let rest = s.strip_prefix(SECRET_PREFIX)?;
    if s.len() != SECRET_LEN {
        return Some(KeyFormatError::Length);
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Some(KeyFormatError::Charset);
    }
    None
}

/// The properties of [`KeySecret::parse`] on any text.
fn secret(s: &str) {
    let expected = if s.starts_with(SECRET_PREFIX) {
        expected_format_error(s)
    } else {
        Some(KeyFormatError::Prefix)
    };
    match KeySecret::parse(s) {
        Ok(k) => {
            assert_eq!(expected, None, "{s:?} parsed");
            assert_eq!(k.expose(), s);
            assert!(!format!("{k:?}").contains(&s[SECRET_PREFIX.len()..]));
        }
        Err(e) => {
            // The checksum is the only check a plain reading leaves out.
            assert_eq!(Some(expected.unwrap_or(KeyFormatError::Checksum)), Some(e));
            // Its message is one of the fixed ones: it never repeats `s`.
            let fixed = [
                KeyFormatError::Prefix,
                KeyFormatError::Length,
                KeyFormatError::Charset,
                KeyFormatError::Checksum,
            ]
            .map(|e| e.to_string());
            assert!(fixed.contains(&e.to_string()), "a message not fixed: {e}");
        }
    }
}

/// The properties of `KeyId`'s parsing on any text.
fn key_id(s: &str) {
    match s.parse::<KeyId>() {
        Ok(id) => {
            let shown = id.to_string();
            assert_eq!(shown.parse::<KeyId>().ok(), Some(id));
            assert_eq!(shown.len(), 36);
            assert_eq!(shown, shown.to_ascii_lowercase());
            // The same 32 hex digits as the text, whatever its form
            // (hyphenated, simple, braced, URN).
            let lower = s.to_ascii_lowercase();
            let digits: String = lower
                .strip_prefix("urn:uuid:")
                .unwrap_or(&lower)
                .chars()
                .filter(|c| !matches!(c, '-' | '{' | '}'))
                .collect();
            assert_eq!(digits, id.as_uuid().simple().to_string(), "{s:?}");
        }
        Err(e) => assert_eq!(e.to_string(), InvalidKeyId.to_string()),
    }
}

/// The properties of [`parse_key_pair`] (`FAL_KEY`) on any text: it
/// splits at the first colon and parses both halves.
fn pair(s: &str) {
    let halves = s
        .split_once(':')
        .filter(|(i, k)| !i.is_empty() && !k.is_empty());
    match (parse_key_pair(s), halves) {
        (Ok(c), Some((id, key))) => {
            assert_eq!(id.parse::<KeyId>().ok(), Some(c.key_id));
            assert_eq!(c.secret.expose(), key);
            assert!(!format!("{c:?}").contains(&key[SECRET_PREFIX.len()..]));
        }
        (Err(HeaderError::MalformedKey), None) => {}
        (Err(HeaderError::NoSuchKey), Some((id, key))) => assert!(
            id.parse::<KeyId>().is_err() || KeySecret::parse(key).is_err(),
            "{s:?} refused although both halves parse"
        ),
        (got, halves) => panic!("{s:?} split as {halves:?} gave {got:?}"),
    }
}
