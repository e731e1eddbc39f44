//! Writing CSV records the way taskbox writes every CSV file (exports and ERR files):
//! RFC 4180, UTF-8 without a BOM, CRLF after each record, a field quoted when it holds a
//! comma, a quote or a line break (quotes doubled), cells otherwise byte for byte.
//!
//! And the formula rule, both ways. A cell that a spreadsheet would run as a formula (it
//! starts with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a `'` in
//! front; so is a cell that only looks defused (`'`s, then one of those), so that no two
//! cells are written alike. An import takes one such `'` off again: whatever taskbox
//! writes imports back as the cells it wrote.

use std::borrow::Cow;

/// The characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [u8; 6] = [b'=', b'+', b'-', b'@', b'\t', b'\r'];

/// Appends one record to `out`.
pub fn write_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a [u8]>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, field);
    }
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, field: &[u8]) {
    if field
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

/// Whether a cell, after any leading `'`s, starts like a formula.
fn starts_like_formula(cell: &[u8]) -> bool {
    let quotes = cell.iter().take_while(|&&b| b == b'\'').count();
    cell.get(quotes).is_some_and(|b| FORMULA_STARTS.contains(b))
}

/// A cell made safe from formula injection: a `'` in front when it starts like a formula,
/// or like a defused one (see the module notes).
pub fn defuse_formula(cell: &[u8]) -> Cow<'_, [u8]> {
    if starts_like_formula(cell) {
        let mut defused = Vec::with_capacity(cell.len() + 1);
        defused.push(b'\'');
        defused.extend_from_slice(cell);
        defused.into()
    } else {
        cell.into()
    }
}

/// A cell as [`defuse_formula`] wrote it, back as it was: one leading `'` off when what
/// follows it starts like a formula.
pub fn restore_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if starts_like_formula(rest.as_bytes()) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, fields.iter().map(|f| f.as_bytes()));
        String::from_utf8(out).unwrap()
    }

    fn defused(cell: &str) -> String {
        String::from_utf8(defuse_formula(cell.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(record(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(
            record(&["x,y", "say \"hi\"", "two\r\nlines"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n"
        );
    }

    #[test]
    fn defuses_formulas() {
        assert_eq!(defused("=1+1"), "'=1+1");
        assert_eq!(defused("-3"), "'-3");
        assert_eq!(defused("+1"), "'+1");
        assert_eq!(defused("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defused("\tx"), "'\tx");
        assert_eq!(defused("\rx"), "'\rx");
        assert_eq!(defused("plain"), "plain");
        assert_eq!(defused("a=b"), "a=b");
        assert_eq!(defused(""), "");
        // Cells that look defused get one more, so that no two cells are written alike.
        assert_eq!(defused("'=1"), "''=1");
        assert_eq!(defused("''-1"), "'''-1");
        // A `'` before anything else is a plain cell.
        assert_eq!(defused("'"), "'");
        assert_eq!(defused("'x"), "'x");
        assert_eq!(defused("''"), "''");
    }

    #[test]
    fn every_defused_cell_is_restored_as_it_was() {
        let cells = [
            "=1+1", "-3", "+1", "@x", "\tx", "\rx", "plain", "", "'", "'x", "''", "'=1", "''-1",
            "'''@", "a=b", "='", "'a'=",
        ];
        for cell in cells {
            assert_eq!(restore_formula(&defused(cell)), cell, "{cell:?}");
        }
        // A cell from elsewhere loses a `'` only where it looks defused.
        assert_eq!(restore_formula("'plain"), "'plain");
        assert_eq!(restore_formula("'-5"), "-5");
    }
}
