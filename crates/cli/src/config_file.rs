//! The text of a `fal serve --config` file: TOML with one top-level key
//! per flag. This reads the text only (no file, no flags): each key, its
//! value as the flag would take it, and the line it is on, so that what is
//! wrong can be pointed at. Which keys exist and what values they take is
//! the flags' business ([`crate::settings`]).

use toml_edit::{Document, Item, Value};

/// One `key = value` line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as written (`queue_concurrency`).
    pub key: String,
    /// The 1-based line the key is on.
    pub line: usize,
    /// The value.
    pub value: FileValue,
}

/// A value as the file gives it, before any flag's parser has seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileValue {
    /// A string (`"5s"`, `"127.0.0.1:8420"`).
    Str(String),
    /// A whole number (`8`).
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// An array of strings and whole numbers (`["10.0.0.0/8", "::1"]`).
    List(Vec<String>),
}

impl FileValue {
    /// The value as command-line text: what `--key=TEXT` would carry.
    /// Lists give one text per element.
    pub fn texts(&self) -> Vec<String> {
        match self {
            FileValue::Str(s) => vec![s.clone()],
            FileValue::Int(i) => vec![i.to_string()],
            FileValue::Bool(b) => vec![b.to_string()],
            FileValue::List(items) => items.clone(),
        }
    }
}

/// What is wrong with the text. Never quotes a value: a line with a
/// secret on it must not end up in an error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not TOML.
    #[error("line {line}, column {column}: not valid TOML: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key whose value is not one a setting can have.
    #[error("line {line}: `{key}`: {why}")]
    Unsupported {
        key: String,
        line: usize,
        why: &'static str,
    },
}

/// Parses the whole text; the entries come in the file's order.
pub fn parse(text: &str) -> Result<Vec<Entry>, ParseError> {
    let doc = Document::parse(text).map_err(|e| {
        let (line, column) = position(text, e.span().map_or(0, |s| s.start));
        ParseError::Syntax {
            line,
            column,
            message: e.message().to_owned(),
        }
    })?;
    let table = doc.as_table();
    let mut entries = Vec::with_capacity(table.len());
    for (key, item) in table.iter() {
        let at = table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| item.span())
            .map_or(0, |s| s.start);
        let line = position(text, at).0;
        let unsupported = |why| ParseError::Unsupported {
            key: key.to_owned(),
            line,
            why,
        };
        let value = match item {
            Item::Value(v) => file_value(v).map_err(unsupported)?,
            Item::Table(_) | Item::ArrayOfTables(_) => return Err(unsupported(NO_TABLES)),
            Item::None => continue,
        };
        entries.push(Entry {
            key: key.to_owned(),
            line,
            value,
        });
    }
    // A [section] header comes before the keys under it, but its table is
    // listed where it was first named; keep errors in reading order.
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

const NO_TABLES: &str = "sections, dotted keys and tables are not settings: every key is top-level (`queue_concurrency = 8`)";

fn file_value(v: &Value) -> Result<FileValue, &'static str> {
    Ok(match v {
        Value::String(s) => FileValue::Str(s.value().clone()),
        Value::Integer(i) => FileValue::Int(*i.value()),
        Value::Boolean(b) => FileValue::Bool(*b.value()),
        Value::Float(_) => {
            return Err(
                "not a whole number: give numbers as integers, durations as strings (\"1.5s\")",
            );
        }
        Value::Datetime(_) => return Err("a date is no setting's value; quote it as a string"),
        Value::InlineTable(_) => return Err(NO_TABLES),
        Value::Array(items) => FileValue::List(
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.value().clone()),
                    Value::Integer(i) => Ok(i.value().to_string()),
                    _ => Err("a list holds strings or whole numbers only"),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The 1-based line and column (in characters) of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(key: &str, line: usize, value: FileValue) -> Entry {
        Entry {
            key: key.into(),
            line,
            value,
        }
    }

    #[test]
    fn every_kind_of_value_with_its_line() {
        let text = "# fal\nlisten = \"127.0.0.1:8420\"\n\nqueue_concurrency = 8\ndemo = true\noperators = [\n  \"alice\",\n  1234,\n]\nmax_staleness = '5s'\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                entry("listen", 2, FileValue::Str("127.0.0.1:8420".into())),
                entry("queue_concurrency", 4, FileValue::Int(8)),
                entry("demo", 5, FileValue::Bool(true)),
                entry(
                    "operators",
                    6,
                    FileValue::List(vec!["alice".into(), "1234".into()])
                ),
                entry("max_staleness", 10, FileValue::Str("5s".into())),
            ]
        );
    }

    #[test]
    fn an_empty_file_has_no_entries() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("# nothing set\n\n").unwrap(), vec![]);
    }

    #[test]
    fn texts_are_what_the_flag_would_carry() {
        assert_eq!(FileValue::Int(-3).texts(), vec!["-3"]);
        assert_eq!(FileValue::Bool(false).texts(), vec!["false"]);
        assert_eq!(FileValue::Str("5s".into()).texts(), vec!["5s"]);
        assert_eq!(
            FileValue::List(vec!["a".into(), "b".into()]).texts(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn a_syntax_error_gives_its_line_and_column_but_not_the_line() {
        let err =
            parse("listen = \"127.0.0.1:8420\"\ngithub_client_secret = s3cret\n").unwrap_err();
        let ParseError::Syntax { line, column, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((*line, *column), (2, 24));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn a_key_given_twice_is_a_syntax_error_on_the_second() {
        let err = parse("demo = true\n\ndemo = false\n").unwrap_err();
        assert!(matches!(err, ParseError::Syntax { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn sections_tables_and_dotted_keys_are_refused_where_they_are() {
        for (text, key, line) in [
            ("demo = true\n[server]\nlisten = \"x\"\n", "server", 2),
            ("demo = true\ngithub.client_id = \"x\"\n", "github", 2),
            ("tls = { cert = \"a\" }\n", "tls", 1),
            ("\n[[apps]]\nname = \"x\"\n", "apps", 2),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(&err, ParseError::Unsupported { key: k, line: l, .. } if k == key && *l == line),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn floats_dates_and_odd_lists_are_refused_with_the_key_and_line() {
        for (text, line) in [
            ("demo = true\nmax_staleness = 1.5\n", 2),
            ("x = 1979-05-27\n", 1),
            ("\n\noperators = [[\"a\"]]\n", 3),
            ("operators = [true]\n", 1),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(&err, ParseError::Unsupported { line: l, .. } if *l == line),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn positions_count_characters_from_one() {
        assert_eq!(position("", 0), (1, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("é = 1\nx", 5), (1, 5));
        assert_eq!(position("a", 99), (1, 2));
    }
}
