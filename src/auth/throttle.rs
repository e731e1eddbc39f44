//! Failed authentications, per address: each one after the first few is answered later
//! than the one before (50 ms, doubling, up to `--auth-max-delay-ms`), and an address that
//! has not failed for `--auth-forget-secs` starts afresh. The delay is applied to the 401
//! by the HTTP core without holding a thread (an answer held back waits in a queue, not in
//! a sleep); a request with a valid token never looks here, so it is never slowed.
//!
//! The table is bounded: past `MAX_ADDRESSES` the stale entries go, and should it still be
//! full, an address not in it gets the longest delay without being recorded. IPv6
//! addresses count by their /64, which one client can fill at will.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The failures an address may have before its answers are delayed: a typo or two.
const FREE_FAILURES: u32 = 2;
/// The first delay; each failure after it doubles it, up to the maximum.
const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The most addresses remembered.
const MAX_ADDRESSES: usize = 10_000;

/// How failures are slowed down.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    /// The longest delay of a failed authentication's answer.
    pub max_delay: Duration,
    /// How long an address is remembered after its last failure.
    pub forget_after: Duration,
}

struct Failures {
    count: u32,
    last: Instant,
}

pub struct Throttle {
    settings: ThrottleSettings,
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Throttle {
        Throttle {
            settings,
            by_address: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed authentication from `peer` at `now`: how long to hold its answer,
    /// and how many failures the address has had lately.
    pub fn failed(&self, peer: Option<IpAddr>, now: Instant) -> (Duration, u32) {
        let Some(peer) = peer else {
            return (self.settings.max_delay, 1);
        };
        let key = address_key(peer);
        let forget = self.settings.forget_after;
        let mut table = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&key) {
            table.retain(|_, f| now.saturating_duration_since(f.last) < forget);
            if table.len() >= MAX_ADDRESSES {
                return (self.settings.max_delay, 1);
            }
        }
        let failures = table.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(failures.last) >= forget {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        (self.delay_after(failures.count), failures.count)
    }

    fn delay_after(&self, failures: u32) -> Duration {
        if failures <= FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_FAILURES - 1).min(20);
        (FIRST_DELAY * 2u32.pow(doublings)).min(self.settings.max_delay)
    }
}

/// The key an address is counted under: IPv4 as itself (an IPv4-mapped IPv6 address too),
/// IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleSettings {
            max_delay: Duration::from_secs(2),
            forget_after: Duration::from_secs(600),
        })
    }

    #[test]
    fn delays_grow_per_address_up_to_the_maximum_and_are_forgotten() {
        let t = throttle();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let now = Instant::now();
        let delays: Vec<u128> = (0..10)
            .map(|_| t.failed(Some(a), now).0.as_millis())
            .collect();
        assert_eq!(delays, [0, 0, 50, 100, 200, 400, 800, 1600, 2000, 2000]);
        // Another address is not slowed by the first one's failures.
        assert_eq!(t.failed(Some(b), now).0, Duration::ZERO);
        // After the forget time, a fresh start.
        let later = now + Duration::from_secs(601);
        assert_eq!(t.failed(Some(a), later).0, Duration::ZERO);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
            t.failed(Some(ip), now);
        }
        let fourth: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(t.failed(Some(fourth), now).0, Duration::from_millis(100));
    }

    #[test]
    fn a_full_table_delays_strangers_without_growing() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..MAX_ADDRESSES as u32 {
            t.failed(Some(IpAddr::V4(i.into())), now);
        }
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(t.failed(Some(stranger), now).0, Duration::from_secs(2));
        assert_eq!(t.by_address.lock().unwrap().len(), MAX_ADDRESSES);
    }
}
