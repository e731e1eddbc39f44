//! What a client sent, made safe for the log: the method, the URL and header values come
//! from the network, and a raw line feed in one would forge a log line (a carriage return
//! or an escape sequence would rewrite one on a terminal). Every control character is
//! escaped, a backslash doubled, and the text cut to a length.

use std::fmt::Write;

/// `text` with its control characters escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{85}`...) and
/// backslashes doubled, cut after `max` characters (marked with `...`).
pub fn escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // Unicode's own line and paragraph separators, and the other format controls.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_cannot_forge_a_line() {
        assert_eq!(
            escaped("/a\nINFO forged\r\x1b[2K\t\u{7f}\\", 100),
            "/a\\nINFO forged\\r\\x1b[2K\\t\\x7f\\\\"
        );
        assert_eq!(escaped("a\u{2028}b\u{85}", 100), "a\\u{2028}b\\x85");
        assert!(!escaped("\u{0}\u{1f}\n", 100).chars().any(char::is_control));
    }

    #[test]
    fn plain_text_is_kept_and_long_text_cut() {
        assert_eq!(
            escaped("/webservicetasks?limit=1 é", 100),
            "/webservicetasks?limit=1 é"
        );
        assert_eq!(escaped("abcdef", 3), "abc...");
    }
}
