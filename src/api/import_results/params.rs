//! The query's parameters, checked in the order the family documents (docs/api.md):
//! the path's `vdnId`, then its `campaignId`; then the body: that it parses as a JSON
//! object, then `offset`, `limit`, `importTaskIds`, and last any field it does not take.
//! Each parameter is checked whole (present, then its type, then its range) before the
//! next; the first thing wrong is the one reported, with its code and a sentence naming
//! the parameter.

use serde_json::{Map, Number, Value};

use super::envelope::{Code, QueryError};
use crate::http::PathArgs;
use crate::store::MAX_CAMPAIGN_LEN;
use crate::task::TaskId;

/// The path's placeholders, as the routes name them.
pub(super) const VDN_ID: &str = "vdnid";
pub(super) const CAMPAIGN_ID: &str = "campaignid";

/// The contract's range of `vdnId`.
const VDN_IDS: std::ops::RangeInclusive<i64> = 1..=9999;
/// The contract's range of `limit`.
const LIMITS: std::ops::RangeInclusive<i64> = 1..=100;
/// The fields the body takes.
const FIELDS: [&str; 3] = ["offset", "limit", "importTaskIds"];
/// The most characters of a value a refusal repeats.
const ECHOED: usize = 40;

/// The path's parameters, checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PathParams {
    pub vdn_id: u32,
    pub campaign: String,
}

/// The body's parameters, checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Page {
    pub offset: u64,
    pub limit: u32,
    /// The tasks named (None: no filter). An id that names no task is kept out: it
    /// matches nothing.
    pub task_ids: Option<Vec<TaskId>>,
}

fn refused(code: Code, desc: String) -> QueryError {
    QueryError::Refused(code, desc)
}

/// `vdnId` and `campaignId`. A route whose path leaves one out (an empty segment) gives
/// it as "", which is refused as empty.
pub(super) fn path(args: &PathArgs) -> Result<PathParams, QueryError> {
    let vdn_id = vdn_id(segment(args, VDN_ID))?;
    let campaign = segment(args, CAMPAIGN_ID);
    if campaign.trim().is_empty() {
        return Err(refused(
            Code::Empty,
            "The parameter campaignId is empty: name the campaign in the path.".into(),
        ));
    }
    if campaign.len() > MAX_CAMPAIGN_LEN {
        return Err(refused(
            Code::OutOfRange,
            format!(
                "The parameter campaignId is {} bytes long; a campaign has at most \
                 {MAX_CAMPAIGN_LEN}.",
                campaign.len()
            ),
        ));
    }
    Ok(PathParams {
        vdn_id,
        campaign: campaign.to_string(),
    })
}

/// The segment placeholder `name` matched; "" when the route's path leaves it out (not
/// `PathArgs::text`, for which a placeholder missing is a fault of the route).
fn segment<'a>(args: &'a PathArgs, name: &str) -> &'a str {
    args.texts
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, text)| text.as_str())
}

fn vdn_id(text: &str) -> Result<u32, QueryError> {
    let (low, high) = (VDN_IDS.start(), VDN_IDS.end());
    if text.trim().is_empty() {
        return Err(refused(
            Code::Empty,
            "The parameter vdnId is empty: give an integer from 1 to 9999 in the path.".into(),
        ));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused(
            Code::WrongType,
            format!(
                "The parameter vdnId must be an integer from {low} to {high}, not {}.",
                echo(text)
            ),
        ));
    }
    match text.parse::<i64>() {
        Ok(n) if VDN_IDS.contains(&n) => Ok(n as u32),
        _ => Err(refused(
            Code::OutOfRange,
            format!(
                "The parameter vdnId must be from {low} to {high}, not {}.",
                echo(text)
            ),
        )),
    }
}

/// The body: `{"offset": 0, "limit": 10, "importTaskIds": ["..."]}`; at most `max_ids`
/// task ids (`--max-import-task-ids`).
pub(super) fn body(bytes: &[u8], max_ids: usize) -> Result<Page, QueryError> {
    let what = "a JSON object with offset, limit and (optionally) importTaskIds";
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(refused(
            Code::Unparsable,
            format!("The request body is empty: send {what}."),
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        refused(
            Code::Unparsable,
            format!("The request body does not parse as JSON ({e}): send {what}."),
        )
    })?;
    let object = match value {
        Value::Object(object) => object,
        other => {
            return Err(refused(
                Code::Unparsable,
                format!("The request body is {}: send {what}.", type_of(&other)),
            ))
        }
    };
    let offset = match required_integer(&object, "offset")? {
        Some(n) if n >= 0 => n as u64,
        n => {
            return Err(refused(
                Code::OutOfRange,
                format!(
                    "The parameter offset must be from 0 to {}, not {}.",
                    i64::MAX,
                    shown(n)
                ),
            ))
        }
    };
    let limit = match required_integer(&object, "limit")? {
        Some(n) if LIMITS.contains(&n) => n as u32,
        n => {
            return Err(refused(
                Code::OutOfRange,
                format!(
                    "The parameter limit must be from {} to {}, not {}.",
                    LIMITS.start(),
                    LIMITS.end(),
                    shown(n)
                ),
            ))
        }
    };
    let task_ids = task_ids(object.get("importTaskIds"), max_ids)?;
    if let Some(other) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(refused(
            Code::ParamError,
            format!(
                "The request body has a field {} this query does not take; it takes {}.",
                echo(other),
                FIELDS.join(", ")
            ),
        ));
    }
    Ok(Page {
        offset,
        limit,
        task_ids,
    })
}

/// A required integer field: Some(value), or None for an integer beyond 64 bits.
fn required_integer(object: &Map<String, Value>, name: &str) -> Result<Option<i64>, QueryError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(refused(
            Code::Empty,
            format!("The parameter {name} is empty: it is required, an integer."),
        )),
        Some(value @ Value::Number(n)) => integer(n).ok_or_else(|| {
            refused(
                Code::WrongType,
                format!(
                    "The parameter {name} must be an integer, not {} (write it as one: 10, \
                     not 10.0 or 1e1).",
                    type_of(value)
                ),
            )
        }),
        Some(other) => Err(refused(
            Code::WrongType,
            format!(
                "The parameter {name} must be an integer, not {}.",
                type_of(other)
            ),
        )),
    }
}

/// An integer written as one: Some(Some(n)), Some(None) when it does not fit in 64 bits
/// (which serde_json reads as a float), None for a number with a fraction or an exponent.
fn integer(n: &Number) -> Option<Option<i64>> {
    if let Some(n) = n.as_i64() {
        return Some(Some(n));
    }
    if n.is_u64() {
        return Some(None);
    }
    let f = n.as_f64()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() >= 2f64.powi(63)).then_some(None)
}

/// `importTaskIds`: absent, null or empty, no filter; else task ids as strings of digits.
fn task_ids(value: Option<&Value>, max_ids: usize) -> Result<Option<Vec<TaskId>>, QueryError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(refused(
                Code::WrongType,
                format!(
                    "The parameter importTaskIds must be an array of task ids (strings), not {}.",
                    type_of(other)
                ),
            ))
        }
    };
    if list.is_empty() {
        return Ok(None);
    }
    if list.len() > max_ids {
        return Err(refused(
            Code::OutOfRange,
            format!(
                "The parameter importTaskIds names {} tasks; at most {max_ids} are taken \
                 (--max-import-task-ids).",
                list.len()
            ),
        ));
    }
    let mut ids = Vec::with_capacity(list.len());
    for (at, item) in list.iter().enumerate() {
        let Value::String(text) = item else {
            return Err(refused(
                Code::WrongType,
                format!(
                    "The parameter importTaskIds must hold task ids as strings; its item {at} \
                     is {}.",
                    type_of(item)
                ),
            ));
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused(
                Code::ParamError,
                format!(
                    "The parameter importTaskIds holds {}, which is not a task id: a task id \
                     is a string of digits.",
                    echo(text)
                ),
            ));
        }
        // Digits beyond a 64-bit id (the original service's ids have 30) name no task here.
        if let Ok(id) = text.parse::<TaskId>() {
            ids.push(id);
        }
    }
    Ok(Some(ids))
}

/// What kind of JSON value `value` is, for a sentence.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction or an exponent",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An integer for a sentence: the value, or that it is beyond 64 bits.
fn shown(n: Option<i64>) -> String {
    n.map_or_else(|| "an integer beyond 64 bits".into(), |n| n.to_string())
}

/// A client's text for a sentence: quoted, cut to `ECHOED` characters.
fn echo(text: &str) -> String {
    let cut: String = text.chars().take(ECHOED).collect();
    let more = if cut.len() < text.len() { "..." } else { "" };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(vdn: Option<&str>, campaign: Option<&str>) -> PathArgs {
        let mut args = PathArgs::default();
        if let Some(vdn) = vdn {
            args.texts.push((VDN_ID, vdn.into()));
        }
        if let Some(campaign) = campaign {
            args.texts.push((CAMPAIGN_ID, campaign.into()));
        }
        args
    }

    /// The code and description of a refusal.
    fn refusal(result: Result<impl std::fmt::Debug, QueryError>) -> (&'static str, String) {
        match result {
            Err(QueryError::Refused(code, desc)) => (code.as_str(), desc),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_path_s_parameters_in_order() {
        let ok = |vdn, campaign| path(&args(Some(vdn), Some(campaign))).unwrap();
        assert_eq!(
            ok("0042", "Camp 1/é"),
            PathParams {
                vdn_id: 42,
                campaign: "Camp 1/é".into()
            }
        );
        assert_eq!(ok("9999", &"c".repeat(64)).vdn_id, 9999);
        let cases = [
            (args(None, Some("c")), "02000001", "vdnId"),
            (args(Some(" "), None), "02000001", "vdnId"),
            (args(Some("abc"), Some("")), "02000006", "vdnId"),
            (args(Some("1.5"), Some("c")), "02000006", "vdnId"),
            (args(Some("+5"), Some("c")), "02000006", "vdnId"),
            (args(Some("0"), None), "02000007", "vdnId"),
            (args(Some("10000"), Some("c")), "02000007", "vdnId"),
            (args(Some("-1"), Some("c")), "02000007", "vdnId"),
            (
                args(Some("99999999999999999999"), Some("c")),
                "02000007",
                "vdnId",
            ),
            (args(Some("1"), None), "02000001", "campaignId"),
            (args(Some("1"), Some("  ")), "02000001", "campaignId"),
            (
                args(Some("1"), Some(&"c".repeat(65))),
                "02000007",
                "campaignId",
            ),
        ];
        for (args, code, name) in cases {
            let (got, desc) = refusal(path(&args));
            assert_eq!(got, code, "{args:?}: {desc}");
            assert!(desc.contains(name), "{args:?}: {desc}");
        }
    }

    fn page(body: &str) -> Result<Page, QueryError> {
        super::body(body.as_bytes(), 3)
    }

    #[test]
    fn a_body_in_the_contract_s_form_is_a_page() {
        assert_eq!(
            page(r#"{"offset": 20, "limit": 100}"#).unwrap(),
            Page {
                offset: 20,
                limit: 100,
                task_ids: None
            }
        );
        let ids = |body: &str| page(body).unwrap().task_ids;
        assert_eq!(ids(r#"{"offset":0,"limit":1,"importTaskIds":null}"#), None);
        assert_eq!(ids(r#"{"offset":0,"limit":1,"importTaskIds":[]}"#), None);
        // A 30-digit id, as the original service gave, names no task: nothing matches.
        assert_eq!(
            ids(
                r#"{"offset":0,"limit":1,"importTaskIds":["7","007","164698362894300182038011895728"]}"#
            ),
            Some(vec![7, 7])
        );
        assert_eq!(
            ids(r#"{"offset":0,"limit":1,"importTaskIds":["164698362894300182038011895728"]}"#),
            Some(vec![])
        );
        // An offset past every task is a page of none.
        assert_eq!(
            page(&format!(r#"{{"offset":{},"limit":1}}"#, i64::MAX))
                .unwrap()
                .offset,
            i64::MAX as u64
        );
    }

    #[test]
    fn each_fault_of_the_body_has_its_code_and_names_its_parameter() {
        let cases = [
            ("", "02000008", "empty"),
            ("  \n", "02000008", "empty"),
            ("{", "02000008", "JSON"),
            (r#"{"offset":0,"limit":1}x"#, "02000008", "JSON"),
            ("[1]", "02000008", "an array"),
            ("null", "02000008", "null"),
            (r#"{"limit":1}"#, "02000001", "offset"),
            (r#"{"offset":null,"limit":1}"#, "02000001", "offset"),
            (r#"{"offset":"0","limit":1}"#, "02000006", "offset"),
            (r#"{"offset":1.5,"limit":1}"#, "02000006", "offset"),
            (r#"{"offset":1e1,"limit":1}"#, "02000006", "offset"),
            (r#"{"offset":true,"limit":1}"#, "02000006", "offset"),
            (r#"{"offset":-1,"limit":1}"#, "02000007", "offset"),
            (
                r#"{"offset":9223372036854775808,"limit":1}"#,
                "02000007",
                "offset",
            ),
            (
                r#"{"offset":100000000000000000000000,"limit":1}"#,
                "02000007",
                "offset",
            ),
            (r#"{"offset":0}"#, "02000001", "limit"),
            (r#"{"offset":0,"limit":[10]}"#, "02000006", "limit"),
            (r#"{"offset":0,"limit":0}"#, "02000007", "limit"),
            (r#"{"offset":0,"limit":101}"#, "02000007", "limit"),
            (
                r#"{"offset":0,"limit":1,"importTaskIds":"7"}"#,
                "02000006",
                "importTaskIds",
            ),
            (
                r#"{"offset":0,"limit":1,"importTaskIds":["1","2","3","4"]}"#,
                "02000007",
                "importTaskIds",
            ),
            (
                r#"{"offset":0,"limit":1,"importTaskIds":[7]}"#,
                "02000006",
                "importTaskIds",
            ),
            (
                r#"{"offset":0,"limit":1,"importTaskIds":["7","abc"]}"#,
                "0200001",
                "importTaskIds",
            ),
            (
                r#"{"offset":0,"limit":1,"importTaskIds":[""]}"#,
                "0200001",
                "importTaskIds",
            ),
            (
                r#"{"offset":0,"limit":1,"importTaskId":["7"]}"#,
                "0200001",
                "importTaskId",
            ),
        ];
        for (body, code, named) in cases {
            let (got, desc) = refusal(page(body));
            assert_eq!(got, code, "{body}: {desc}");
            assert!(desc.contains(named), "{body}: {desc}");
        }
    }

    #[test]
    fn a_body_wrong_in_two_ways_reports_the_first() {
        let cases = [
            (r#"{"limit":0}"#, "02000001", "offset"),
            (r#"{"offset":-1,"limit":"x"}"#, "02000007", "offset"),
            (
                r#"{"offset":0,"limit":0,"importTaskIds":5}"#,
                "02000007",
                "limit",
            ),
            (
                r#"{"other":1,"offset":0,"limit":1,"importTaskIds":[1]}"#,
                "02000006",
                "importTaskIds",
            ),
        ];
        for (body, code, named) in cases {
            let (got, desc) = refusal(page(body));
            assert_eq!((got, desc.contains(named)), (code, true), "{body}: {desc}");
        }
    }

    #[test]
    fn a_long_value_is_cut_in_the_refusal() {
        let (_, desc) = refusal(path(&args(Some(&"x".repeat(5000)), Some("c"))));
        assert!(desc.len() < 200, "{desc}");
    }
}
