//! Writing CSV records the way taskbox writes every CSV file (exports and ERR files):
//! RFC 4180, UTF-8 without a BOM, CRLF after each record, a field quoted when it holds a
//! comma, a quote or a line break (quotes doubled), cells otherwise byte for byte.

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

/// A cell made safe from formula injection: a leading `'` when it starts like a formula.
pub fn defuse_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b) if FORMULA_STARTS.contains(b) => format!("'{cell}").into(),
        _ => cell.into(),
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
        assert_eq!(defuse_formula("=1+1"), "'=1+1");
        assert_eq!(defuse_formula("-3"), "'-3");
        assert_eq!(defuse_formula("\tx"), "'\tx");
        assert_eq!(defuse_formula("plain"), "plain");
        assert_eq!(defuse_formula(""), "");
    }
}
