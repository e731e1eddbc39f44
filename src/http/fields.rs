//! The fields of a request, parsed: its query string (as HTML form data), media type and
//! Content-Disposition parameters, client-given file names, and bodies read through a limit
//! so that no client can make the server buffer more than the configured bound.

use std::io::Read;

use super::error::ApiError;

/// The query string's pairs, decoded as HTML form data (`+` and `%20` are spaces).
/// Invalid UTF-8 after decoding is refused rather than silently replaced.
pub fn query_pairs(url: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(Vec::new());
    };
    let decode = |part: &str| -> Result<String, ApiError> {
        let spaced = part.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| ApiError::bad_request("The query string is not valid UTF-8 once decoded."))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// A media type split into its lowercase essence and its parameters.
pub struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(value: &str) -> MediaType {
        let mut parts = split_params(value);
        let essence = if parts.is_empty() {
            String::new()
        } else {
            parts.remove(0).0.to_ascii_lowercase()
        };
        MediaType {
            essence,
            params: parts,
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The file name a Content-Disposition value carries: `filename*` (RFC 5987, UTF-8) when
/// present, else `filename`.
pub fn disposition_filename(value: &str) -> Option<String> {
    let params = split_params(value);
    let find = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Some(extended) = find("filename*") {
        if let Some((charset, rest)) = extended.split_once('\'') {
            if charset.eq_ignore_ascii_case("utf-8") {
                let encoded = rest.split_once('\'').map_or(rest, |(_, v)| v);
                if let Ok(name) = percent_encoding::percent_decode_str(encoded).decode_utf8() {
                    return Some(name.into_owned());
                }
            }
        }
    }
    find("filename")
}

/// The `name` parameter of a Content-Disposition value (a form field's name).
pub fn disposition_name(value: &str) -> Option<String> {
    split_params(value)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("name"))
        .map(|(_, v)| v)
}

/// Splits `first; a=b; c="d;e"` into `[(first, ""), (a, b), (c, d;e)]`, unquoting values.
fn split_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    let mut current = String::new();
    let mut pieces = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                current.push('"');
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                current.push(escaped);
                            }
                        }
                        '"' => break,
                        other => current.push(other),
                    }
                }
                current.push('"');
            }
            ';' => pieces.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    pieces.push(current);
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match piece.split_once('=') {
            Some((name, v)) => {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                out.push((name.trim().to_string(), v.to_string()));
            }
            None => out.push((piece.to_string(), String::new())),
        }
    }
    out
}

/// What a client is told when its body could not be read: 408 for a pause longer than the
/// read timeout, 400 for the rest (a body cut short).
pub fn body_error(e: &std::io::Error) -> ApiError {
    let message = format!("The request body could not be read: {e}.");
    if e.kind() == std::io::ErrorKind::TimedOut {
        ApiError::request_timeout(message)
    } else {
        ApiError::bad_request(message)
    }
}

/// Reads a whole body of at most `limit` bytes; more is a 413 naming `what`.
pub fn read_limited(reader: &mut dyn Read, limit: u64, what: &str) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| body_error(&e))?;
    if body.len() as u64 > limit {
        return Err(ApiError::too_large(format!(
            "The {what} is larger than the limit of {limit} bytes."
        )));
    }
    Ok(body)
}

/// Checks a client-given file name: no path separator, no control character, not `.`/`..`,
/// at most 255 bytes.
pub fn check_filename(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::bad_request(format!(
            "The file name {name:?} is not allowed: {why}."
        )))
    };
    if name.contains(['/', '\\']) {
        return bad("it contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if name == "." || name == ".." {
        return bad("it names a directory");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_as_form_data() {
        let pairs = query_pairs("/x?kind=csv.import&filename=Data%20File.csv&a=b+c&empty").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("kind".into(), "csv.import".into()),
                ("filename".into(), "Data File.csv".into()),
                ("a".into(), "b c".into()),
                ("empty".into(), "".into())
            ]
        );
        assert_eq!(query_pairs("/x?a=%FF").unwrap_err().status, 400);
        assert!(query_pairs("/x").unwrap().is_empty());
    }

    #[test]
    fn media_types_and_dispositions() {
        let m = MediaType::parse("multipart/form-data; boundary=\"--abc;d\"");
        assert_eq!(m.essence, "multipart/form-data");
        assert_eq!(m.param("BOUNDARY"), Some("--abc;d"));
        assert_eq!(
            disposition_filename("attachment; filename=\"a b.csv\""),
            Some("a b.csv".into())
        );
        assert_eq!(
            disposition_filename(
                "attachment; filename=\"x.csv\"; filename*=UTF-8''%C3%A9t%C3%A9.csv"
            ),
            Some("été.csv".into())
        );
        assert_eq!(
            disposition_name("form-data; name=\"file\"; filename=\"q.csv\""),
            Some("file".into())
        );
    }

    #[test]
    fn file_names_without_paths_or_controls() {
        assert!(check_filename("Data File.csv").is_ok());
        assert!(check_filename("../../etc/passwd").is_err());
        assert!(check_filename("a\\b").is_err());
        assert!(check_filename("a\nb").is_err());
        assert!(check_filename("..").is_err());
    }
}
