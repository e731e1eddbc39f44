//! The family's answer: one JSON object for every answer, success or not, `{"result",
//! "count", "resultCode", "resultDesc", "returnCode", "returnDesc"}`; its result codes; and
//! its errors. A request the family refuses is answered 200 with the code that says why (the
//! contract's codes) and a description naming the parameter; an error of the HTTP core or
//! the store (an `ApiError`: 401, 404, 413, 503...) keeps its HTTP status, in the same
//! object, with the code `0200` followed by that status.

use serde::Serialize;

use super::view::ImportView;
use crate::http::{ApiError, Reply};
use crate::store::StoreError;

/// The contract's result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    /// `0200001`: a parameter is wrong in a way no other code says (the description does).
    ParamError,
    /// `02000001`: a required parameter is missing, null or blank.
    Empty,
    /// `02000006`: a parameter of the wrong type.
    WrongType,
    /// `02000007`: a value out of its range (or a length, a count past its bound).
    OutOfRange,
    /// `02000008`: a body that does not parse.
    Unparsable,
}

impl Code {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Code::ParamError => "0200001",
            Code::Empty => "02000001",
            Code::WrongType => "02000006",
            Code::OutOfRange => "02000007",
            Code::Unparsable => "02000008",
        }
    }
}

/// The code of a success.
const SUCCESS: &str = "0200000";

/// Why a query was not answered: the family's one error type.
#[derive(Debug)]
pub(super) enum QueryError {
    /// The request is wrong: answered 200 with its code and a description naming the
    /// parameter.
    Refused(Code, String),
    /// A failure of the core or the store, answered with its HTTP status.
    Api(ApiError),
}

impl From<ApiError> for QueryError {
    fn from(e: ApiError) -> QueryError {
        QueryError::Api(e)
    }
}

impl From<StoreError> for QueryError {
    fn from(e: StoreError) -> QueryError {
        QueryError::Api(e.into())
    }
}

/// Every answer, in the contract's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    result: &'a [ImportView<'a>],
    count: u64,
    result_code: &'a str,
    result_desc: &'a str,
    return_code: &'a str,
    return_desc: &'a str,
}

fn answer(status: u16, result: &[ImportView<'_>], count: u64, code: &str, desc: &str) -> Reply {
    let answer = Answer {
        result,
        count,
        result_code: code,
        result_desc: desc,
        return_code: code,
        return_desc: desc,
    };
    // An Answer always serializes.
    Reply::json_text(status, serde_json::to_vec(&answer).unwrap_or_default())
}

/// A page of results and the count of all that match.
pub(super) fn success(result: &[ImportView<'_>], count: u64) -> Reply {
    answer(200, result, count, SUCCESS, "success")
}

/// A refused request: 200, no result, the code and the description.
pub(super) fn refused(code: Code, desc: &str) -> Reply {
    answer(200, &[], 0, code.as_str(), desc)
}

/// An error of the core or the store in this family's form, its HTTP status kept (and a
/// 405's Allow).
pub(super) fn error(e: &ApiError) -> Reply {
    let reply = answer(e.status, &[], 0, &format!("0200{}", e.status), &e.message);
    match &e.allow {
        Some(allow) => reply.with_header("Allow", allow.clone()),
        None => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn body(mut reply: Reply) -> (u16, String) {
        let mut text = String::new();
        reply.body.read_to_string(&mut text).unwrap();
        (reply.status, text)
    }

    #[test]
    fn every_answer_has_the_contract_s_fields_in_its_order() {
        assert_eq!(
            body(success(&[], 0)),
            (
                200,
                r#"{"result":[],"count":0,"resultCode":"0200000","resultDesc":"success","returnCode":"0200000","returnDesc":"success"}"#
                    .to_string()
            )
        );
        assert_eq!(
            body(refused(Code::OutOfRange, "The parameter limit ...")),
            (
                200,
                r#"{"result":[],"count":0,"resultCode":"02000007","resultDesc":"The parameter limit ...","returnCode":"02000007","returnDesc":"The parameter limit ..."}"#
                    .to_string()
            )
        );
    }

    #[test]
    fn an_error_of_every_kind_keeps_its_status_in_the_family_s_form() {
        let errors = [
            ApiError::bad_request("bad"),
            ApiError::forbidden("another site"),
            ApiError::not_found("none"),
            ApiError::method_not_allowed("GET", "POST"),
            ApiError::request_timeout("slow"),
            ApiError::too_large("big"),
            ApiError::unsupported_media_type("type"),
            ApiError::misdirected("host"),
            ApiError::too_many("quota"),
            ApiError::headers_too_large("headers"),
            ApiError::internal("a detail for the log"),
            ApiError::unavailable("a detail for the log"),
            ApiError::disk_full(),
            // What the core answers a request without a valid token with.
            ApiError {
                status: 401,
                ..ApiError::not_found("A valid access token is required.")
            },
        ];
        for e in errors {
            let reply = error(&e);
            let allow = reply
                .headers
                .iter()
                .find(|(n, _)| *n == "Allow")
                .map(|(_, v)| v.clone());
            let (status, text) = body(reply);
            assert_eq!(status, e.status, "{text}");
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let code = format!("0200{}", e.status);
            assert_eq!(json["resultCode"], code.as_str(), "{json}");
            assert_eq!(json["returnCode"], code.as_str(), "{json}");
            assert_eq!(json["resultDesc"], e.message.as_str(), "{json}");
            assert_eq!(json["returnDesc"], e.message.as_str(), "{json}");
            assert_eq!(
                (json["count"].clone(), json["result"].clone()),
                (0.into(), serde_json::json!([]))
            );
            assert!(!text.contains("a detail for the log"), "{text}");
            assert_eq!(allow, e.allow, "{text}");
        }
    }
}
