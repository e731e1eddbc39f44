//! The router: a pure function from a method and a path to an endpoint. Paths match
//! case-insensitively, with or without the `/ivrapi` prefix and a trailing slash.

use super::error::ApiError;
use crate::task::{FileRole, TaskId};

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListTasks,
    CreateTask,
    GetTask(TaskId),
    DeleteTask(TaskId),
    GetTaskFile(TaskId, FileRole),
}

const TASKS_ALLOW: &str = "GET, POST";
const TASK_ALLOW: &str = "GET, DELETE";
const FILE_ALLOW: &str = "GET";

/// Routes `method` (HEAD is served as GET) and `path` (the URL without its query).
pub fn route(method: &str, path: &str) -> Result<Endpoint, ApiError> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("The path is not valid UTF-8 once decoded."))?;
    let lower = decoded.to_ascii_lowercase();
    let mut segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first() == Some(&"ivrapi") {
        segments.remove(0);
    }
    let is_get = method == "GET" || method == "HEAD";
    match segments.as_slice() {
        ["webservicetasks"] => match method {
            "POST" => Ok(Endpoint::CreateTask),
            _ if is_get => Ok(Endpoint::ListTasks),
            _ => Err(ApiError::method_not_allowed(method, TASKS_ALLOW)),
        },
        ["webservicetasks", id] => {
            let id = task_id(id)?;
            match method {
                "DELETE" => Ok(Endpoint::DeleteTask(id)),
                _ if is_get => Ok(Endpoint::GetTask(id)),
                _ => Err(ApiError::method_not_allowed(method, TASK_ALLOW)),
            }
        }
        ["webservicetasks", id, file] => {
            let role = match *file {
                "iofile" => FileRole::Io,
                "errorfile" => FileRole::Err,
                "logfile" => FileRole::Log,
                _ => return Err(not_found(path)),
            };
            let id = task_id(id)?;
            if is_get {
                Ok(Endpoint::GetTaskFile(id, role))
            } else {
                Err(ApiError::method_not_allowed(method, FILE_ALLOW))
            }
        }
        _ => Err(not_found(path)),
    }
}

fn not_found(path: &str) -> ApiError {
    let shown: String = path.chars().take(200).collect();
    ApiError::not_found(format!("There is no resource at {shown}."))
}

fn task_id(text: &str) -> Result<TaskId, ApiError> {
    match text.parse::<TaskId>() {
        Ok(id) if id > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => {
            let shown: String = text.chars().take(40).collect();
            Err(ApiError::bad_request(format!(
                "The task id must be a positive 64-bit integer, not {shown:?}."
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_case_insensitively_with_prefix_and_slash() {
        for path in [
            "/webservicetasks/7/IoFile",
            "/WebServiceTasks/7/iofile",
            "/ivrapi/webservicetasks/7/IOFILE/",
            "/IvrApi/WEBSERVICETASKS/7/IoFile",
        ] {
            assert_eq!(
                route("GET", path),
                Ok(Endpoint::GetTaskFile(7, FileRole::Io)),
                "{path}"
            );
        }
        assert_eq!(route("GET", "/webservicetasks/"), Ok(Endpoint::ListTasks));
        assert_eq!(route("HEAD", "/webservicetasks"), Ok(Endpoint::ListTasks));
        assert_eq!(
            route("POST", "/ivrapi/webservicetasks"),
            Ok(Endpoint::CreateTask)
        );
        assert_eq!(
            route("DELETE", "/webservicetasks/12"),
            Ok(Endpoint::DeleteTask(12))
        );
        assert_eq!(
            route("GET", "/webservicetasks/12/ErrorFile"),
            Ok(Endpoint::GetTaskFile(12, FileRole::Err))
        );
        assert_eq!(
            route("GET", "/webservicetasks/12/LogFile"),
            Ok(Endpoint::GetTaskFile(12, FileRole::Log))
        );
    }

    #[test]
    fn wrong_methods_name_the_allowed_ones() {
        let e = route("PUT", "/webservicetasks/1").unwrap_err();
        assert_eq!((e.status, e.allow), (405, Some("GET, DELETE")));
        assert_eq!(
            route("DELETE", "/webservicetasks").unwrap_err().allow,
            Some("GET, POST")
        );
        assert_eq!(
            route("POST", "/webservicetasks/1/logfile")
                .unwrap_err()
                .status,
            405
        );
    }

    #[test]
    fn bad_ids_and_unknown_paths() {
        for id in ["abc", "-1", "0", "99999999999999999999", "+5", "1e3"] {
            assert_eq!(
                route("GET", &format!("/webservicetasks/{id}"))
                    .unwrap_err()
                    .status,
                400,
                "{id}"
            );
        }
        assert_eq!(route("GET", "/nothing").unwrap_err().status, 404);
        assert_eq!(
            route("GET", "/webservicetasks/1/other").unwrap_err().status,
            404
        );
        assert_eq!(
            route("GET", "/webservicetasks/%FF").unwrap_err().status,
            400
        );
    }
}
