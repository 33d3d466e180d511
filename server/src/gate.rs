//! The door every TCP connection passes before HTTP is spoken: a global cap
//! and a cap per address on open connections. A connection over either is
//! told 503 and closed at once, so an attacker holding thousands of idle
//! connections runs into the cap, not into the process's descriptor limit
//! (which would stop `accept` for everybody).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::lock;

/// How long the per-cap refusal count is gathered into one log line.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Which cap a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// All connections of the server.
    Server { limit: usize },
    /// The connections from one address.
    Address { limit: usize },
}

/// Counts open connections, in all and per address.
#[derive(Debug)]
pub(crate) struct Gate {
    max_total: usize,
    /// 0: no limit.
    max_per_address: usize,
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Refusals not logged yet, and when we last logged them (one line per
    /// burst, not one per refused connection).
    refused_unlogged: AtomicU64,
    last_logged: Mutex<Option<Instant>>,
}

/// An admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
        if self.gate.max_per_address == 0 {
            return;
        }
        let mut per_address = lock(&self.gate.per_address);
        if let Some(count) = per_address.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.key);
            }
        }
    }
}

impl Gate {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total,
            max_per_address,
            total: AtomicUsize::new(0),
            per_address: Mutex::default(),
            refused_unlogged: AtomicU64::new(0),
            last_logged: Mutex::new(None),
        }
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Let a connection from `addr` in, or say which cap it hit.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Permit, Full> {
        let key = address_key(addr);
        // Count first, check after: two racing connections cannot both take
        // the last place.
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Full::Server { limit: self.max_total });
        }
        if self.max_per_address > 0 {
            let mut per_address = lock(&self.per_address);
            let count = per_address.entry(key).or_insert(0);
            if *count >= self.max_per_address {
                drop(per_address);
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(Full::Address { limit: self.max_per_address });
            }
            *count += 1;
        }
        Ok(Permit { gate: self.clone(), key })
    }

    /// Log a refusal: the first of a burst at once, the rest as a count at
    /// most every [`REFUSAL_LOG_EVERY`], so a flood costs a line, not a line
    /// per connection.
    pub fn log_refusal(&self, addr: IpAddr, full: Full) {
        let unlogged = self.refused_unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut last = lock(&self.last_logged);
        if last.is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY) {
            return;
        }
        *last = Some(now);
        drop(last);
        self.refused_unlogged.store(0, Ordering::Relaxed);
        match full {
            Full::Server { limit } => tracing::warn!(%addr, limit, refused = unlogged, "connection limit of the server reached; answering 503"),
            Full::Address { limit } if addr.is_loopback() || is_private(addr) => tracing::warn!(
                %addr, limit, refused = unlogged,
                "connection limit per address reached; answering 503 (behind a reverse proxy, raise --connections-per-address or set it to 0)"
            ),
            Full::Address { limit } => tracing::warn!(%addr, limit, refused = unlogged, "connection limit per address reached; answering 503"),
        }
    }
}

/// One key per client: an IPv4 address, or an IPv6 /64 (what one host or
/// one customer is usually given, so stepping through its addresses buys
/// nothing). IPv4-mapped IPv6 addresses count as their IPv4 address.
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The whole answer to a connection over a cap: small enough for one write
/// into a fresh socket's buffer, JSON like every other error, with the
/// security headers every response carries (security.rs cannot add them:
/// this never reaches the router).
pub(crate) fn refusal_response(full: Full) -> Vec<u8> {
    let body = match full {
        Full::Server { .. } => r#"{"error":"the server has too many open connections; try again shortly","status":503}"#,
        Full::Address { .. } => r#"{"error":"too many open connections from your address; try again shortly","status":503}"#,
    };
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 5\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nreferrer-policy: same-origin\r\ncontent-security-policy: default-src 'none'\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back() {
        let gate = Arc::new(Gate::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let a1 = gate.admit(a).expect("first");
        let _a2 = gate.admit(a).expect("second");
        assert_eq!(gate.admit(a).err(), Some(Full::Address { limit: 2 }));
        let _b1 = gate.admit(b).expect("another address");
        assert_eq!(gate.admit(b).err(), Some(Full::Server { limit: 3 }));
        assert_eq!(gate.open(), 3);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _a3 = gate.admit(a).expect("a place came back");
    }

    #[test]
    fn an_ipv6_host_counts_once_for_its_64() {
        let gate = Arc::new(Gate::new(100, 1));
        let _first = gate.admit("2001:db8:1:2::1".parse().expect("ip")).expect("first");
        assert!(gate.admit("2001:db8:1:2:ffff::9".parse().expect("ip")).is_err(), "same /64");
        let _other = gate.admit("2001:db8:1:3::1".parse().expect("ip")).expect("another /64");
        let _v4 = gate.admit("10.0.0.1".parse().expect("ip")).expect("v4");
        assert!(gate.admit("::ffff:10.0.0.1".parse().expect("ip")).is_err(), "mapped v4 is the v4 address");
    }

    #[test]
    fn no_limit_per_address_when_zero() {
        let gate = Arc::new(Gate::new(10, 0));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let permits: Vec<_> = (0..10).map(|_| gate.admit(a).expect("admitted")).collect();
        assert!(gate.admit(a).is_err(), "the global cap still holds");
        drop(permits);
        assert_eq!(gate.open(), 0);
    }
}
