//! Who may address this server: the `Host` a request names and, for a request that changes
//! something, the `Origin` a browser says it comes from. A web page on another site must not
//! reach taskbox through a browser on the same machine or network: by DNS rebinding (a name
//! of the attacker's that resolves to 127.0.0.1; the request then carries that name as its
//! Host: 421) or by a cross-site form or fetch (the browser names the other site as Origin:
//! 403).
//!
//! The hosts taskbox answers to: the loopback names (`localhost`, `*.localhost`) and
//! addresses, the address it listens on when that is a specific one, and the names an
//! operator adds with `--allowed-hosts`. A request without a Host header (HTTP/1.0, a
//! hand-written client) is not a browser's and is let through.

use std::net::{IpAddr, SocketAddr};

use super::error::ApiError;
use super::request::{Method, Request};

/// The hosts a request may name.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Lower-case names (and address literals) added by the operator.
    names: Vec<String>,
    /// The address the server listens on, when it is not the unspecified one.
    listen: Option<IpAddr>,
}

impl AllowedHosts {
    /// The loopback names and addresses, `listen`'s address, and `names`.
    pub fn new(names: &[String], listen: SocketAddr) -> AllowedHosts {
        AllowedHosts {
            names: names
                .iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
            listen: Some(listen.ip()).filter(|ip| !ip.is_unspecified()),
        }
    }

    /// Whether `host` (a Host header's or an Origin's host, port and brackets allowed) is one
    /// this server answers to.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            if ip.is_loopback() || Some(ip) == self.listen {
                return true;
            }
        }
        self.names.iter().any(|allowed| allowed == name)
    }

    /// 421 for a request whose Host this server does not answer to.
    pub fn check_host(&self, request: &Request<'_>) -> Result<(), ApiError> {
        match request.header("Host") {
            Some(host) if !self.allows(host) => Err(ApiError::misdirected(format!(
                "This server does not answer to the host {}: use its address, or start it \
                 with --allowed-hosts naming that host.",
                shown(host)
            ))),
            _ => Ok(()),
        }
    }

    /// 403 for a request that changes something (anything but GET and HEAD) sent from a web
    /// page of another origin.
    pub fn check_origin(&self, request: &Request<'_>) -> Result<(), ApiError> {
        if matches!(request.method(), Method::Get | Method::Head) {
            return Ok(());
        }
        let Some(origin) = request.header("Origin") else {
            return Ok(());
        };
        let host = origin
            .split_once("://")
            .map(|(_, rest)| rest)
            .filter(|rest| !rest.is_empty());
        match host {
            Some(host) if self.allows(host) => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "Requests that change tasks are not taken from a web page of another site \
                 (Origin {}).",
                shown(origin)
            ))),
        }
    }
}

/// The host name of `host[:port]`, `[v6][:port]` or `v6`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(inside, _)| inside);
    }
    match host.rsplit_once(':') {
        // One colon: name:port. More: a bare IPv6 address.
        Some((name, _)) if !name.contains(':') => name,
        _ => host,
    }
}

/// A client-sent value, shortened and quoted for a message.
fn shown(value: &str) -> String {
    let short: String = value.chars().take(100).collect();
    format!("{short:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_the_listen_address_and_configured_names_are_allowed() {
        let listen: SocketAddr = "192.168.1.20:8080".parse().unwrap();
        let hosts = AllowedHosts::new(&["Tasks.Example.org".into()], listen);
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "::1",
            "192.168.1.20:8080",
            "tasks.example.org",
            "tasks.example.org:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "192.168.1.21",
            "[::2]:80",
            "",
            "tasks.example.org.evil",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        // Listening on every address names none of them.
        let any = AllowedHosts::new(&[], "0.0.0.0:8080".parse().unwrap());
        assert!(!any.allows("0.0.0.0"));
        assert!(any.allows("127.0.0.1"));
    }
}
