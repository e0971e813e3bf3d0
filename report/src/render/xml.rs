//! The one XML escaper of the workspace (JUnit and SVG here, the guest
//! JUnit of irqstorm-harness).

use std::fmt::Write as _;

/// Escape text for XML content and attribute values; characters XML 1.0
/// cannot carry (most C0 controls) become `\u{..}` text.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_keeps_control_chars_visible() {
        // The markup characters, the harness's KTAP names (`rm<mod>`), the
        // gate's messages, and control characters XML 1.0 cannot carry.
        let raw = "rm<mod> & \"c\" 'd' a>b\u{1}\u{1b}[0m\u{ffff}\tx\ny\r";
        let esc = xml_escape(raw);
        assert_eq!(
            esc,
            "rm&lt;mod&gt; &amp; &quot;c&quot; &apos;d&apos; a&gt;b\\u{1}\\u{1b}[0m\\u{ffff}\tx\ny\r"
        );
        // Valid as text and as an attribute value, and reads back as the
        // input with the controls spelled out.
        let doc = format!("<a v=\"{esc}\">{esc}</a>");
        let parsed = roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        let a = parsed.root_element();
        assert_eq!(
            a.text(),
            Some("rm<mod> & \"c\" 'd' a>b\\u{1}\\u{1b}[0m\\u{ffff}\tx\ny\n")
        );
        assert!(a
            .attribute("v")
            .unwrap()
            .starts_with("rm<mod> & \"c\" 'd' a>b\\u{1}"));
        assert_eq!(xml_escape("plain text"), "plain text");
    }
}
