//! Filling the dashboard's HTML templates.

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` (escaped) and `{{{name}}}` (trusted HTML) in a template,
/// in one pass: the template is scanned once, and text put in is never
/// scanned again (an alias `{{csrf}}` stays that text). Placeholders with
/// no value are left as they are.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let value = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let trusted = tail
            .strip_prefix("{{{")
            .and_then(|t| t.split_once("}}}"))
            .and_then(|(name, after)| Some((value(name)?, after)));
        if let Some((v, after)) = trusted {
            out.push_str(v);
            rest = after;
            continue;
        }
        let escaped = tail[2..]
            .split_once("}}")
            .and_then(|(name, after)| Some((value(name)?, after)));
        if let Some((v, after)) = escaped {
            out.push_str(&escape(v));
            rest = after;
        } else {
            out.push_str("{{");
            rest = &tail[2..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_values_but_not_fragments() {
        let out = render(
            "<p>{{a}}</p>{{{b}}}",
            &[("a", "<script>\"x\""), ("b", "<em>ok</em>")],
        );
        assert_eq!(out, "<p>&lt;script&gt;&quot;x&quot;</p><em>ok</em>");
    }

    #[test]
    fn values_are_never_scanned_again() {
        let out = render(
            "<td>{{alias}}</td><input value=\"{{csrf}}\">{{{rows}}}",
            &[
                ("alias", "{{csrf}} {{{rows}}}"),
                ("csrf", "TOKEN"),
                ("rows", "<tr>{{csrf}}</tr>"),
            ],
        );
        assert_eq!(
            out,
            "<td>{{csrf}} {{{rows}}}</td><input value=\"TOKEN\"><tr>{{csrf}}</tr>"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_stay_as_they_are() {
        assert_eq!(
            render("{{x}} {{{y}}} {{", &[("z", "1")]),
            "{{x}} {{{y}}} {{"
        );
        assert_eq!(render("{{{a}}", &[("a", "<b>")]), "{{{a}}");
        assert_eq!(render("é{{a}}ü", &[("a", "ß")]), "éßü");
    }
}
