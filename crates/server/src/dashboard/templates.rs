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

/// Fills `{{name}}` (escaped) and `{{{name}}}` (trusted HTML) in a template.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{{{k}}}}}}}"), v);
        out = out.replace(&format!("{{{{{k}}}}}"), &escape(v));
    }
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
}
