//! The workspace's layout rules, checked on every `cargo test`:
//!
//! - **Imports point one way.** Within each crate, the modules under one
//!   parent (a module is a file, or a folder's `mod.rs` and everything under
//!   it) import each other without a cycle. A child may use its ancestors
//!   (shared state sits at the root of what uses it) and a parent its
//!   children; siblings only one way.
//! - **No source file over 500 lines**, tests and benchmarks included.
//!
//! Imports are read from the source text: every `crate::…` and `super::…`
//! path outside comments and string literals, `use` groups expanded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be.
const MAX_LINES: usize = 500;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The crates of the workspace: `crates/*` with a `src/`.
fn crates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/ is readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    out.sort();
    out
}

/// The module path of a source file of a library (`a/b.rs` and
/// `a/b/mod.rs` are `[a, b]`; `lib.rs` is `[]`). `None` for a file that is
/// not part of the library's module tree (`main.rs`, `bin/`).
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    if parts.first().is_some_and(|p| p == "bin") || (parts.is_empty() && last == "main.rs") {
        return None;
    }
    match last.as_str() {
        "lib.rs" if parts.is_empty() => {}
        "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    Some(parts)
}

/// `text` with comments, string and char literals blanked out (lines kept,
/// so positions still name the right line).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_lines = |s: &[u8], out: &mut String| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            keep_lines(&rest[..end], &mut out);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0usize;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            keep_lines(&rest[..j], &mut out);
            i += j;
        } else if rest[0] == b'r' && (rest.starts_with(b"r\"") || rest.starts_with(b"r#")) {
            // A raw string: r"…", r#"…"#, …
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let body = 2 + hashes;
            let end = rest[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(rest.len(), |p| body + p + close.len());
            keep_lines(&rest[..end], &mut out);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            keep_lines(&rest[..end], &mut out);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('a', '\n', '\u{1F}') or a lifetime ('a).
            let lit = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else {
                let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + ch) == Some(&b'\'')).then_some(2 + ch)
            };
            match lit {
                Some(n) => {
                    keep_lines(&rest[..n], &mut out);
                    i += n;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Whether `c` may be part of an identifier.
fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Reads a path after `crate::` (or `super::`) at `s`: its segments, with
/// `{…}` groups expanded into one path each. Stops at anything else.
fn paths_at(s: &[u8]) -> Vec<Vec<String>> {
    fn skip_ws(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }
    /// Parses one use-tree at `i`; returns its paths and where it ended.
    fn tree(s: &[u8], mut i: usize) -> (Vec<Vec<String>>, usize) {
        let mut prefix: Vec<String> = Vec::new();
        loop {
            i = skip_ws(s, i);
            if s.get(i) == Some(&b'{') {
                let mut all = Vec::new();
                i += 1;
                loop {
                    i = skip_ws(s, i);
                    match s.get(i) {
                        None => return (all, i),
                        Some(b'}') => return (all, i + 1),
                        Some(b',') => i += 1,
                        _ => {
                            let before = i;
                            let (inner, end) = tree(s, i);
                            for p in inner {
                                let mut full = prefix.clone();
                                full.extend(p);
                                all.push(full);
                            }
                            i = if end == before { end + 1 } else { end };
                        }
                    }
                }
            }
            let start = i;
            while i < s.len() && ident_byte(s[i]) {
                i += 1;
            }
            if i == start {
                return (vec![prefix], i);
            }
            prefix.push(String::from_utf8_lossy(&s[start..i]).into_owned());
            let after = skip_ws(s, i);
            if s[after..].starts_with(b"::") {
                i = after + 2;
            } else {
                return (vec![prefix], i);
            }
        }
    }
    tree(s, 0).0
}

/// One import: where it is written and the module path it names.
struct Import {
    line: usize,
    path: Vec<String>,
}

/// The module paths a file names through `crate::` and `super::`.
fn imports(code: &str, module: &[String], file_is_mod: bool) -> Vec<Import> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for (kw, up) in [("crate::", None), ("super::", Some(()))] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(kw) {
            let at = from + pos;
            from = at + kw.len();
            if at > 0 && (ident_byte(b[at - 1]) || b[at - 1] == b':') {
                continue;
            }
            let line = code[..at].matches('\n').count() + 1;
            // `super` in a file's inline `mod tests` would name the file's
            // own module; a parent's edge is ignored anyway, so the file's
            // parent (for `mod.rs`, the folder's parent) is close enough.
            let base: Vec<String> = match up {
                None => Vec::new(),
                Some(()) => {
                    let mut m = module.to_vec();
                    if !file_is_mod || !m.is_empty() {
                        m.pop();
                    }
                    m
                }
            };
            for p in paths_at(&b[from..]) {
                let mut full = base.clone();
                let ups = p.iter().take_while(|s| *s == "super").count();
                for _ in 0..ups {
                    full.pop();
                }
                full.extend(p.into_iter().skip(ups).take_while(|s| s != "self"));
                out.push(Import { line, path: full });
            }
        }
    }
    out
}

/// A cycle among the children of one parent, as a readable report.
fn find_cycle(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for next in edges.get(n).into_iter().flat_map(|m| m.keys()) {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == next).expect("on stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// The import cycles among sibling modules of the crate whose sources are
/// in `src`, one report line per cycle.
fn cycles_in(src: &Path) -> Vec<String> {
    let files: Vec<(PathBuf, Vec<String>)> = rust_files(src)
        .into_iter()
        .filter_map(|f| module_of(src, &f).map(|m| (f, m)))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(_, m)| m.clone()).collect();
    // parent → child → imported sibling → one example (file:line).
    let mut graph: BTreeMap<Vec<String>, BTreeMap<String, BTreeMap<String, String>>> =
        BTreeMap::new();
    for (file, module) in &files {
        let text = std::fs::read_to_string(file).expect("source is readable");
        let is_mod = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        for import in imports(&code_only(&text), module, is_mod) {
            // The longest prefix that is a module.
            let target = (0..=import.path.len())
                .rev()
                .map(|n| import.path[..n].to_vec())
                .find(|p| modules.contains(p))
                .unwrap_or_default();
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // to an ancestor or a descendant
            }
            let example = format!(
                "{}:{} ({})",
                file.strip_prefix(root()).unwrap_or(file).display(),
                import.line,
                import.path.join("::")
            );
            graph
                .entry(module[..common].to_vec())
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .entry(target[common].clone())
                .or_insert(example);
        }
    }
    let mut out = Vec::new();
    for (parent, edges) in &graph {
        if let Some(cycle) = find_cycle(edges) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {}: {}", w[0], w[1], edges[&w[0]][&w[1]]))
                .collect();
            out.push(format!(
                "{} in crate::{}:\n    {}",
                src.display(),
                parent.join("::"),
                steps.join("\n    ")
            ));
        }
    }
    out
}

#[test]
fn sibling_modules_import_each_other_one_way_only() {
    let mut found = Vec::new();
    for krate in crates() {
        found.extend(cycles_in(&krate.join("src")));
    }
    assert!(
        found.is_empty(),
        "import cycles (move the shared part to the parent, or to a module both may import):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_over_500_lines() {
    let mut long = Vec::new();
    let mut dirs: Vec<PathBuf> = crates()
        .into_iter()
        .flat_map(|c| ["src", "tests", "benches"].map(|d| c.join(d)))
        .collect();
    dirs.push(root().join("fuzz"));
    for file in dirs.iter().flat_map(|d| rust_files(d)) {
        let lines = std::fs::read_to_string(&file)
            .expect("source is readable")
            .lines()
            .count();
        if lines > MAX_LINES {
            long.push(format!("{} ({lines} lines)", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by concern; move long tests beside the module):\n{}",
        long.join("\n")
    );
}

/// The checker itself: a cycle is found, a one-way import is not, and
/// paths in comments and strings do not count.
#[test]
fn the_cycle_check_finds_a_cycle_and_nothing_else() {
    let dir = tempdir();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c;\n").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::{b::{x, y::Z}, c};\n// crate::c is fine\n",
    )
    .unwrap();
    std::fs::write(src.join("b/mod.rs"), "mod y; use super::c::Q;\n").unwrap();
    std::fs::write(
        src.join("b/y.rs"),
        "pub struct Z; use super::super::c; fn f() { let _ = \"crate::a\"; }\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "pub struct Q;\n").unwrap();
    assert_eq!(cycles_in(&src), Vec::<String>::new());
    std::fs::write(
        src.join("c.rs"),
        "pub struct Q;\nfn g() { crate::a::f(); }\n",
    )
    .unwrap();
    let found = cycles_in(&src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("a -> b") && found[0].contains("c -> a"),
        "{found:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory under the target's temporary folder.
fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fal-layout-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
