//! Guessing tokens: 10,000 requests with random tokens from one address, over many kept-alive
//! connections, while a valid client polls with its token from another. Each guess is
//! refused (401) and, after the first few, its answer is held back for a while, in a queue
//! rather than on a thread: the valid client's latency stays what it was, and the log
//! records the flood without a line per guess.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::raw::one_at_a_time;
use crate::slow_clients::{p99, Poller};

const GUESSES: usize = 10_000;
const CONNECTIONS: usize = 32;
/// The guesser's address; the valid client uses 127.0.0.1.
const GUESSER: &str = "127.0.0.2";

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("random bytes");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_flood_of_guessed_tokens_does_not_slow_a_valid_client() {
    let _alone = one_at_a_time();
    // A short hold, so that the flood ends within seconds; the mechanism is the default's.
    let server = Server::start_with(&["--auth-max-delay-ms", "20"]);
    let token = create_token(&server, 1, "ops", "default");
    let bearer = token.bearer();
    let task = send(
        "POST",
        &server.url("/webservicetasks"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"kind": "sleep", "params": {"seconds": "0"}}"#),
    )
    .data(202);
    let id = task["WebServiceTaskId"].as_i64().unwrap();
    let poll = format!(
        "GET /webservicetasks/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {bearer}\r\n\r\n"
    );
    let mut poller = Poller::new(&server, poll.into_bytes());
    let unloaded: Vec<Duration> = (0..300).map(|_| poller.poll()).collect();

    let sent = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let other = Mutex::new(Vec::new());
    let started = Instant::now();
    let loaded = std::thread::scope(|scope| {
        for _ in 0..CONNECTIONS {
            scope.spawn(|| {
                let mut stream = connect_from(&server, GUESSER, None);
                while sent.fetch_add(1, Ordering::SeqCst) < GUESSES {
                    let guess = format!("tbx_{}_{}", 1 + sent.load(Ordering::SeqCst) % 7, random_hex(32));
                    let request = format!(
                        "GET /webservicetasks/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {guess}\r\n\r\n"
                    );
                    if stream.write_all(request.as_bytes()).is_err() {
                        stream = connect_from(&server, GUESSER, None);
                        continue;
                    }
                    match read_head(&mut stream) {
                        Some((head, start)) => {
                            read_body(&mut stream, start, head.content_length());
                            if head.status == 401 {
                                refused.fetch_add(1, Ordering::SeqCst);
                            } else {
                                other.lock().unwrap().push(head.status);
                            }
                        }
                        None => stream = connect_from(&server, GUESSER, None),
                    }
                }
            });
        }
        let mut times = Vec::new();
        while sent.load(Ordering::SeqCst) < GUESSES && started.elapsed() < DEADLINE * 2 {
            times.push(poller.poll());
            std::thread::sleep(Duration::from_millis(5));
        }
        times
    });
    let (p99_unloaded, p99_loaded) = (p99(&unloaded), p99(&loaded));
    eprintln!(
        "{} guesses refused in {:?}; polls: {} unloaded, p99 {p99_unloaded:?}; {} under the flood, p99 {p99_loaded:?}",
        refused.load(Ordering::SeqCst),
        started.elapsed(),
        unloaded.len(),
        loaded.len()
    );
    assert!(
        sent.load(Ordering::SeqCst) >= GUESSES,
        "the flood did not end within its deadline"
    );
    assert!(
        other.lock().unwrap().is_empty(),
        "a guess was not refused: {:?}",
        other.lock().unwrap()
    );
    // Every guess answered 401, but for the few cut short by a reconnection.
    assert!(
        refused.load(Ordering::SeqCst) >= GUESSES - CONNECTIONS,
        "{}",
        refused.load(Ordering::SeqCst)
    );
    assert!(
        loaded.len() >= 50,
        "only {} polls during the flood",
        loaded.len()
    );
    assert!(
        p99_loaded < p99_unloaded + Duration::from_millis(10),
        "the valid client's p99 went from {p99_unloaded:?} to {p99_loaded:?} under the flood"
    );
    // The log names the guesser, without a line per guess.
    let log = server.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("authentication failed from 127.0.0.2"))
        .count();
    assert!(
        (3..=3 + GUESSES / 100).contains(&lines),
        "{lines} log lines for {GUESSES} guesses"
    );
}
