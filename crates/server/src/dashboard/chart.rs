//! The keys page's usage chart: a key's last days as daily bars, accepted
//! stacked under refused, drawn by the server as inline SVG. A pure
//! function of the counts; every text in it is escaped. Colours come from
//! presentation attributes and classes (`app.css`), never `style`, so the
//! dashboard's Content-Security-Policy (`style-src 'self'`, no scripts)
//! lets it through.

use fal_core::{Timestamp, UsageCounts};

use super::escape;

/// Width of one day's bar, and the gap after it.
const BAR: u64 = 5;
const GAP: u64 = 1;
/// Height of the tallest bar.
const HEIGHT: u64 = 32;

/// The chart of `days` (oldest first, as [`fal_core::usage::by_day`] gives
/// them) for the key `label` names, as an `<svg>` element.
pub fn usage_chart(days: &[(Timestamp, UsageCounts)], label: &str) -> String {
    let calls = |c: &UsageCounts| c.accepted.saturating_add(c.refused());
    let most = days.iter().map(|(_, c)| calls(c)).max().unwrap_or(0).max(1);
    let (mut accepted, mut refused) = (0u64, 0u64);
    let width = (BAR + GAP) * days.len() as u64;
    let mut bars = String::new();
    for (i, (day, c)) in days.iter().enumerate() {
        accepted = accepted.saturating_add(c.accepted);
        refused = refused.saturating_add(c.refused());
        let x = (BAR + GAP) * i as u64;
        // Heights rounded up, so a day with any call shows.
        let scaled = |n: u64| (n.saturating_mul(HEIGHT)).div_ceil(most);
        let total_h = scaled(calls(c)).min(HEIGHT);
        let refused_h = scaled(c.refused()).min(total_h);
        let accepted_h = total_h - refused_h;
        let date = day.to_rfc3339();
        let date = date.get(..10).unwrap_or(&date);
        bars.push_str(&format!(
            "<g><title>{}: {} accepted, {} refused</title>",
            escape(date),
            c.accepted,
            c.refused()
        ));
        if accepted_h > 0 {
            bars.push_str(&format!(
                "<rect class=\"accepted\" fill=\"#2f855a\" x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{accepted_h}\"/>",
                HEIGHT - accepted_h
            ));
        }
        if refused_h > 0 {
            bars.push_str(&format!(
                "<rect class=\"refused\" fill=\"#c53030\" x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{refused_h}\"/>",
                HEIGHT - total_h
            ));
        }
        bars.push_str("</g>");
    }
    let summary = format!(
        "Calls with key {} over the last {} days: {accepted} accepted, {refused} refused",
        label,
        days.len()
    );
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"usage-chart\" role=\"img\" \
         width=\"{width}\" height=\"{h}\" viewBox=\"0 0 {width} {h}\" \
         data-accepted=\"{accepted}\" data-refused=\"{refused}\" aria-label=\"{label}\">\
         <title>{label}</title>\
         <line class=\"axis\" stroke=\"#888\" x1=\"0\" y1=\"{HEIGHT}\" x2=\"{width}\" y2=\"{HEIGHT}\"/>\
         {bars}</svg>",
        h = HEIGHT + 1,
        label = escape(&summary),
    )
}

#[cfg(test)]
mod tests {
    use fal_core::usage::DAY_MS;

    use super::*;

    fn day(i: i64, accepted: u64, revoked: u64) -> (Timestamp, UsageCounts) {
        let counts = UsageCounts {
            accepted,
            revoked,
            ..UsageCounts::default()
        };
        (Timestamp(1_796_083_200_000 + i * DAY_MS), counts)
    }

    /// The `height` of every `<rect>` of class `class`, in order.
    fn heights(svg: &str, class: &str) -> Vec<u64> {
        svg.split(&format!("<rect class=\"{class}\""))
            .skip(1)
            .map(|r| {
                let h = r.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn bars_are_scaled_to_the_busiest_day_and_stacked() {
        let svg = usage_chart(&[day(0, 10, 0), day(1, 0, 0), day(2, 3, 2)], "k");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        // 5 of 10 calls is 16 high, 2 of them refused (rounded up): 7.
        assert_eq!(heights(&svg, "accepted"), vec![32, 9]);
        assert_eq!(heights(&svg, "refused"), vec![7]);
        assert_eq!(svg.matches("<g>").count(), 3);
        assert!(svg.contains("data-accepted=\"13\" data-refused=\"2\""));
        assert!(
            svg.contains("<title>2026-12-01: 10 accepted, 0 refused</title>"),
            "{svg}"
        );
        assert!(svg.contains("width=\"18\""));
    }

    #[test]
    fn a_day_with_one_call_still_shows() {
        let svg = usage_chart(&[day(0, 1000, 0), day(1, 1, 0)], "k");
        assert_eq!(heights(&svg, "accepted"), vec![32, 1]);
    }

    #[test]
    fn no_calls_draws_an_empty_axis() {
        let svg = usage_chart(&[day(0, 0, 0), day(1, 0, 0)], "k");
        assert!(!svg.contains("<rect"));
        assert!(svg.contains("<line"));
        assert!(svg.contains("0 accepted, 0 refused"));
    }

    #[test]
    fn text_is_escaped_and_nothing_needs_style_or_script() {
        let svg = usage_chart(&[day(0, 1, 1)], "<script>\"x\"</script>");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&quot;x&quot;"));
        assert!(!svg.contains("style"), "{svg}");
        assert!(!svg.contains("href"), "{svg}");
    }
}
