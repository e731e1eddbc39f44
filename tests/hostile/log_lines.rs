//! What a client sends reaches the log escaped: a method or a URL carrying a line feed, a
//! carriage return or a terminal escape cannot forge or rewrite a log line.

use crate::common::*;
use crate::raw::*;

#[test]
fn control_characters_in_a_method_or_a_url_are_escaped_in_the_log() {
    let server = Server::start();
    for request in [
        &b"GET /webservicetasks/\nFORGED-LINE-1\tINFO\x1b[2J HTTP/1.1\r\nHost: 127.0.0.1\r\n\
           Connection: close\r\n\r\n"[..],
        b"GE\rFORGED-LINE-2\x1b[1A /webservicetasks HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Connection: close\r\n\r\n",
    ] {
        exchange(&server, request).refused();
    }
    still_serving(&server);
    let log = wait_until("both requests to be logged", || {
        let log = server.log();
        (log.contains("FORGED-LINE-1") && log.contains("FORGED-LINE-2")).then_some(log)
    });
    for line in log.lines() {
        assert!(
            !line.starts_with("FORGED") && !line.contains('\x1b') && !line.contains('\r'),
            "a raw control character reached the log: {line:?}"
        );
    }
    assert!(
        log.contains("/webservicetasks/\\nFORGED-LINE-1\\tINFO\\x1b[2J"),
        "{log}"
    );
    assert!(log.contains("GE\\rFORGED-LINE-2\\x1b[1A"), "{log}");
}
