//! A kind's declared params ([`Param`]) and the check every submission passes before its
//! kind's own `validate`: each param must be one the kind declares, and each value within
//! the length the kind declares for it. So what a client can make the store keep with a
//! task is bounded by the kind, whatever the form of the request.

use crate::task::Params;

/// One param a kind accepts: its name, the longest value it takes (in bytes of UTF-8), and
/// a line saying what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The name, exactly as clients send it.
    pub name: &'static str,
    /// The longest value accepted, in bytes; a longer one is refused naming this limit.
    pub max_len: usize,
    /// What the param is for, in one line.
    pub about: &'static str,
}

impl Param {
    /// A param `name` taking values of at most `max_len` bytes, for what `about` says.
    pub const fn new(name: &'static str, max_len: usize, about: &'static str) -> Param {
        Param {
            name,
            max_len,
            about,
        }
    }
}

/// The most bytes of a client's unknown param name repeated in the refusal.
const ECHOED_NAME: usize = 64;

/// Refuses a param `declared` does not name, or a value longer than its maximum: a sentence
/// for the client naming the param and, for an unknown one, the known ones.
pub(crate) fn check_params(kind: &str, declared: &[Param], params: &Params) -> Result<(), String> {
    for (name, value) in params {
        let Some(param) = declared.iter().find(|p| p.name == name) else {
            let known = if declared.is_empty() {
                "none".to_string()
            } else {
                declared
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "The param {} is unknown for kind {kind}; known params: {known}.",
                echo(name)
            ));
        };
        if value.len() > param.max_len {
            return Err(format!(
                "The param {name} is too long: {} bytes; kind {kind} takes at most {} bytes.",
                value.len(),
                param.max_len
            ));
        }
    }
    Ok(())
}

/// A client's name for the refusal: as sent when short and printable, else quoted and cut.
fn echo(name: &str) -> String {
    let printable = !name.is_empty()
        && name.len() <= ECHOED_NAME
        && name.chars().all(|c| c.is_ascii_graphic() && c != '"');
    if printable {
        return name.to_string();
    }
    let mut end = name.len().min(ECHOED_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < name.len() { "..." } else { "" };
    format!("{:?}{cut}", &name[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: [Param; 2] = [
        Param::new("table", 64, "the dataset"),
        Param::new("key", 4, "the key columns"),
    ];

    fn check(pairs: &[(&str, &str)]) -> Result<(), String> {
        let params: Params = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        check_params("csv.import", &DECLARED, &params)
    }

    #[test]
    fn declared_params_within_their_lengths_pass() {
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&[("table", "rates"), ("key", "code")]), Ok(()));
    }

    #[test]
    fn an_unknown_param_is_named_with_the_known_ones() {
        assert_eq!(
            check(&[("table", "t"), ("tabel", "t")]).unwrap_err(),
            "The param tabel is unknown for kind csv.import; known params: table, key."
        );
        let none = check_params("sleep", &[], &[("x".into(), "1".into())].into());
        assert_eq!(
            none.unwrap_err(),
            "The param x is unknown for kind sleep; known params: none."
        );
    }

    #[test]
    fn an_overlong_value_is_named_with_the_limit() {
        assert_eq!(
            check(&[("key", "a,b,c")]).unwrap_err(),
            "The param key is too long: 5 bytes; kind csv.import takes at most 4 bytes."
        );
    }

    #[test]
    fn a_long_or_strange_unknown_name_is_echoed_cut_and_quoted() {
        let long = "é".repeat(100);
        let message = check(&[(long.as_str(), "")]).unwrap_err();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("...") && message.contains("known params: table, key"));
        let message = check(&[("a b\n", "")]).unwrap_err();
        assert!(
            message.starts_with("The param \"a b\\n\" is unknown"),
            "{message}"
        );
    }
}
