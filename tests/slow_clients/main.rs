//! Slow clients, and a flood of guessed tokens, against a valid one: a binary of its own, because its main test measures the
//! valid client's latency, and other tests running beside it (cargo runs a binary's tests
//! in parallel, and the binaries one after another) would measure the machine instead. Its
//! tests take turns too (`raw::one_at_a_time`).

mod brute_force;
#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../hostile/raw.rs"]
mod raw;
mod slow_clients;
