//! HTTP with the server through an HTTP client (ureq): requests whose answers are
//! [`Answer`]s (4xx and 5xx included), and the API's usual steps: submit a task, read it,
//! wait for its end, walk the list.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use super::{wait_until, Server};

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The envelope's `data`, after checking the answer is a success with `status`.
    pub fn data(&self, status: u16) -> Value {
        let json = self.json();
        assert_eq!(self.status, status, "unexpected answer: {json}");
        assert_eq!(json["status"], "success", "{json}");
        assert_eq!(json["message"], "", "{json}");
        json["data"].clone()
    }

    /// The envelope's message, after checking the answer is an error with `status`.
    pub fn error(&self, status: u16) -> String {
        let json = self.json();
        assert_eq!(self.status, status, "unexpected answer: {json}");
        assert_eq!(json["status"], "error", "{json}");
        assert_eq!(json["data"], Value::Null, "{json}");
        json["message"].as_str().expect("message").to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// Sends a request; 4xx and 5xx answers are answers, not errors.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut request = agent().request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    into_answer(response)
}

pub fn into_answer(response: ureq::Response) -> Answer {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or_default().to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("read body");
    Answer {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Answer {
    send("GET", url, &[], None)
}

pub fn delete(url: &str) -> Answer {
    send("DELETE", url, &[], None)
}

pub fn post_json(url: &str, body: &Value) -> Answer {
    send(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

/// POSTs a file as the raw body; `query` is appended to /webservicetasks.
pub fn post_file(server: &Server, query: &str, file: &[u8]) -> Answer {
    send(
        "POST",
        &server.url(&format!("/webservicetasks?{query}")),
        &[("Content-Type", "text/csv")],
        Some(file),
    )
}

/// POSTs a JSON submission of a `kind` task; the answer, whatever it is.
pub fn post_task(server: &Server, kind: &str, params: Value) -> Answer {
    post_json(
        &server.url("/webservicetasks"),
        &serde_json::json!({"kind": kind, "params": params}),
    )
}

/// Submits a JSON task and returns its id.
pub fn submit(server: &Server, kind: &str, params: Value) -> i64 {
    let data = post_task(server, kind, params).data(202);
    data["WebServiceTaskId"].as_i64().expect("id")
}

/// The task object of task `id`.
pub fn task(server: &Server, id: i64) -> Value {
    get(&server.url(&format!("/webservicetasks/{id}"))).data(200)
}

/// Waits until task `id` has ended and returns it.
pub fn wait_finished(server: &Server, id: i64) -> Value {
    wait_until(&format!("task {id} to finish"), || {
        let t = task(server, id);
        matches!(t["Status"].as_str(), Some("SUCCESS" | "ERROR" | "CANCELED")).then_some(t)
    })
}

/// Waits until task `id` is running.
pub fn wait_running(server: &Server, id: i64) -> Value {
    wait_until(&format!("task {id} to start"), || {
        let t = task(server, id);
        (t["Status"] == "In progress").then_some(t)
    })
}

/// Every task, newest first, read a page of 1000 at a time, and the X-Total-Count of the
/// first page.
pub fn list_all(server: &Server) -> (Vec<Value>, u64) {
    let mut tasks = Vec::new();
    let mut total = None;
    loop {
        let answer = get(&server.url(&format!(
            "/webservicetasks?limit=1000&offset={}",
            tasks.len()
        )));
        let page = answer.data(200);
        total.get_or_insert_with(|| total_count(&answer));
        let page = page.as_array().expect("a list").clone();
        if page.is_empty() {
            return (tasks, total.expect("read"));
        }
        tasks.extend(page);
    }
}

/// The number of tasks with `status`, from the list's X-Total-Count.
pub fn count_with_status(server: &Server, status: &str) -> u64 {
    let answer = get(&server.url(&format!(
        "/webservicetasks?limit=1&status={}",
        status.replace(' ', "%20")
    )));
    answer.data(200);
    total_count(&answer)
}

/// The X-Total-Count of a list's answer.
pub fn total_count(answer: &Answer) -> u64 {
    answer
        .header("X-Total-Count")
        .expect("X-Total-Count")
        .parse()
        .expect("a count")
}
