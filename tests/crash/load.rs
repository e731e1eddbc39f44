//! The crash test's clients: threads that submit a mix of tasks (sleeps, imports of small
//! generated CSV files, some with duplicate keys or bad rows, and exports) until told to
//! stop or until the server is gone, and remember every submission answered 2xx.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::rng::Rng;

/// The datasets the imports fill and the exports read; all share one header.
pub const DATASETS: [&str; 3] = ["crash_a", "crash_b", "crash_c"];
const HEADER: &str = "id,name,amount";
/// One key in 30 is drawn from this small range, so later imports meet keys of earlier ones
/// (duplicates); the others are drawn from 2^40, so that the datasets never fill up with
/// every key and later imports still write rows a crash can cut short.
const SHARED_KEYS: u64 = 1_000;
const KEYS: u64 = 1 << 40;

/// What a client saw that it should not have.
#[derive(Debug)]
pub enum Fault {
    /// An answer other than 202.
    Refused(String),
    /// The request failed without an answer, at this instant (fine after the kill).
    Transport(Instant, String),
}

/// Submits tasks to `base` until `stop` is set or a request fails; every id answered 202
/// is pushed to `acked` as soon as the answer is read.
pub fn client(base: &str, seed: u64, stop: &AtomicBool, acked: &Mutex<Vec<i64>>) -> Option<Fault> {
    let mut rng = Rng::new(seed);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build();
    while !stop.load(Ordering::SeqCst) {
        let result = match rng.below(20) {
            0..=8 => {
                let dataset = DATASETS[rng.below(3) as usize];
                let rows = if rng.one_in(5) {
                    rng.between(2_000, 8_000)
                } else {
                    rng.between(1, 300)
                };
                let file = csv_file(&mut rng, rows);
                agent
                    .post(&format!("{base}/webservicetasks"))
                    .query("kind", "csv.import")
                    .query("table", dataset)
                    .query("key", "id")
                    .query("filename", &format!("{dataset}-{rows}.csv"))
                    .set("Content-Type", "text/csv")
                    .send_bytes(&file)
            }
            9..=15 => {
                let seconds = format!("{:.2}", rng.between(5, 40) as f64 / 100.0);
                json_post(&agent, base).send_string(
                    &json!({"kind": "sleep", "params": {"seconds": seconds}}).to_string(),
                )
            }
            _ => {
                let dataset = DATASETS[rng.below(3) as usize];
                json_post(&agent, base).send_string(
                    &json!({"kind": "csv.export", "params": {"table": dataset}}).to_string(),
                )
            }
        };
        match result {
            Ok(response) if response.status() == 202 => {
                let body = match response.into_string() {
                    Ok(body) => body,
                    Err(e) => return Some(Fault::Transport(Instant::now(), e.to_string())),
                };
                let body: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("a 202 that is not JSON ({e}): {body}"));
                let id = body["data"]["WebServiceTaskId"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("no id in {body}"));
                acked.lock().unwrap().push(id);
            }
            Ok(response) => {
                return Some(Fault::Refused(format!(
                    "{} {}",
                    response.status(),
                    response.into_string().unwrap_or_default()
                )))
            }
            Err(ureq::Error::Status(status, response)) => {
                return Some(Fault::Refused(format!(
                    "{status} {}",
                    response.into_string().unwrap_or_default()
                )))
            }
            Err(e) => return Some(Fault::Transport(Instant::now(), e.to_string())),
        }
        std::thread::sleep(Duration::from_millis(rng.between(20, 120)));
    }
    None
}

/// A POST of a JSON submission, ready for its body.
fn json_post(agent: &ureq::Agent, base: &str) -> ureq::Request {
    agent
        .post(&format!("{base}/webservicetasks"))
        .set("Content-Type", "application/json")
}

/// A CSV file of `rows` data rows under [`HEADER`]: about one row in 20 repeats the key of
/// the row before (a duplicate), one in 30 takes a key other imports use too (see
/// [`SHARED_KEYS`]), one in 50 is bad (a field too many, or an empty key).
pub fn csv_file(rng: &mut Rng, rows: u64) -> Vec<u8> {
    let mut out = String::with_capacity(rows as usize * 24 + HEADER.len() + 1);
    out.push_str(HEADER);
    out.push('\n');
    let mut last_key = rng.below(KEYS);
    for n in 0..rows {
        let key = if n > 0 && rng.one_in(20) {
            last_key
        } else if rng.one_in(30) {
            rng.below(SHARED_KEYS)
        } else {
            rng.below(KEYS)
        };
        last_key = key;
        let amount = rng.below(100_000);
        if rng.one_in(50) {
            if rng.one_in(2) {
                out.push_str(&format!("{key},name {n},{amount},extra\n"));
            } else {
                out.push_str(&format!(",name {n},{amount}\n"));
            }
        } else {
            out.push_str(&format!("{key},name {n},{amount}\n"));
        }
    }
    out.into_bytes()
}

/// Client threads running [`client`] against one server.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Option<Fault>>>,
}

impl Clients {
    pub fn start(base: &str, n: usize, seed: u64, acked: &Arc<Mutex<Vec<i64>>>) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let (base, stop, acked) = (base.to_string(), stop.clone(), acked.clone());
                let seed = seed ^ (i as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                std::thread::spawn(move || client(&base, seed, &stop, &acked))
            })
            .collect();
        Clients { stop, threads }
    }

    /// Stops the clients and returns what went wrong, other than transport failures after
    /// `killed_at` (the server was gone).
    pub fn stop(self, killed_at: Instant) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut faults = Vec::new();
        for thread in self.threads {
            match thread.join().expect("client thread") {
                None => {}
                Some(Fault::Transport(at, _)) if at >= killed_at => {}
                Some(Fault::Transport(_, e)) => {
                    faults.push(format!("a request failed while the server ran: {e}"))
                }
                Some(Fault::Refused(answer)) => {
                    faults.push(format!("a submission was refused: {answer}"))
                }
            }
        }
        faults
    }
}
