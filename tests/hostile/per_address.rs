//! Connections per IP address (`--max-connections-per-ip`): one address opening connections
//! past its cap is refused (its newest are closed at once) while another address is served.

use std::io::Write;
use std::net::TcpStream;

use crate::common::*;
use crate::raw::*;

#[test]
fn an_address_past_its_connection_cap_is_refused_while_another_is_served() {
    let server = Server::start_with(&["--max-connections-per-ip", "10"]);
    let mut crowd: Vec<TcpStream> = (0..20)
        .map(|_| connect_from(&server, "127.0.0.2", None))
        .collect();
    wait_until("the ten connections over the cap to be closed", || {
        let closed = crowd.iter().filter(|c| is_closed(c)).count();
        assert!(closed <= 10, "{closed} closed, with a cap of 10 for 20");
        (closed == 10).then_some(())
    });
    // Meanwhile another address is served, again and again.
    for _ in 0..5 {
        served_now(&server);
    }
    crowd.retain(|c| !is_closed(c));
    assert_eq!(crowd.len(), 10);
    // A new one from the crowded address is refused; the ten it has are served.
    let mut extra = connect_from(&server, "127.0.0.2", None);
    let took = wait_closed(&mut extra, std::time::Duration::from_secs(10));
    eprintln!("the 21st connection of 127.0.0.2 was closed after {took:?}");
    for stream in crowd.iter_mut() {
        stream
            .write_all(
                b"GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        match read_outcome(stream) {
            Outcome::Other { status: 200, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    // Once they are gone, the address is served again.
    crowd.clear();
    wait_until("127.0.0.2 to be served again", || {
        let mut stream = connect_from(&server, "127.0.0.2", None);
        stream
            .write_all(b"GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .ok()?;
        match read_outcome(&mut stream) {
            Outcome::Other { status: 200, .. } => Some(()),
            _ => None,
        }
    });
    still_serving(&server);
}
