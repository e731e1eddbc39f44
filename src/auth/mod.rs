//! Authentication: who sends a request. A request carries `Authorization: Bearer <token>`;
//! the token's user, client and role become the request's identity and scope. Without any
//! token ever made (and in `--auth auto`, the default) the service runs open: every
//! request is the open user of client `default`, and the service listens only on loopback
//! unless told `--allow-open-network`. Failures are logged with the peer address and their
//! answers delayed per address (throttle.rs); a valid token never waits.
//!
//! The token's text and its hashing are in `secret.rs`, the tokens in memory in
//! `keyring.rs`; the `token` commands that make and revoke them in `commands.rs`.

pub mod commands;
mod keyring;
mod secret;
mod throttle;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use throttle::ThrottleSettings;

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use crate::task::{Identity, Role, Scope};
use keyring::Keyring;
use throttle::Throttle;

/// The longest client name a token or `X-Taskbox-Client` may carry.
pub const MAX_CLIENT_LEN: usize = 64;

/// When a request must carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Open until the first token is made, then always.
    Auto,
    /// Always, even before the first token exists.
    Required,
}

impl AuthMode {
    /// The mode `--auth` names.
    pub fn parse(text: &str) -> Option<AuthMode> {
        match text {
            "auto" => Some(AuthMode::Auto),
            "required" => Some(AuthMode::Required),
            _ => None,
        }
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Whether the open mode may serve at all: only on a loopback address, or with
    /// `--allow-open-network`. When it may not, a request without a token is refused even
    /// before the first token exists.
    pub open_allowed: bool,
    pub throttle: ThrottleSettings,
}

/// Who sends a request, and what they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    pub scope: Scope,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No valid token (401). `delay`: how long to hold the answer.
    #[error("{why}")]
    Refused { why: Refusal, delay: Duration },
    /// A valid token asks for what it may not do (403).
    #[error("{0}")]
    Forbidden(String),
    /// The tokens could not be read.
    #[error("{0}")]
    Store(StoreError),
}

/// What was wrong with the token (the client is told, in words a person can act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this request carries no access token")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the access token is not valid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was revoked")]
    Revoked,
}

pub struct Authenticator {
    keyring: Keyring,
    settings: AuthSettings,
    throttle: Throttle,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    pub fn new(
        store: Store,
        settings: AuthSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Authenticator, StoreError> {
        Ok(Authenticator {
            keyring: Keyring::new(store)?,
            throttle: Throttle::new(settings.throttle),
            settings,
            clock,
        })
    }

    /// Whether any token was ever made.
    pub fn has_tokens(&self) -> Result<bool, StoreError> {
        Ok(self.keyring.tokens()?.any())
    }

    /// Who sends a request with this `Authorization` header (and, for an administrator
    /// acting for one client, this `X-Taskbox-Client`), from `peer`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        act_for: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let tokens = self.keyring.tokens().map_err(AuthError::Store)?;
        let Some(authorization) = authorization else {
            if self.settings.mode == AuthMode::Auto && self.settings.open_allowed && !tokens.any() {
                return open_caller(act_for);
            }
            return Err(self.refuse(Refusal::Missing, peer));
        };
        let Some(text) = bearer(authorization) else {
            return Err(self.refuse(Refusal::NotBearer, peer));
        };
        let found = secret::parse(text).and_then(|p| {
            tokens
                .get(p.id)
                .filter(|t| secret::matches(p.secret, &t.secret_hash))
        });
        let Some(token) = found else {
            return Err(self.refuse(Refusal::Invalid, peer));
        };
        if token.revoked_at.is_some() {
            return Err(self.refuse(Refusal::Revoked, peer));
        }
        let now_secs = self.clock.now_ms().div_euclid(1000);
        if token.expires_at.is_some_and(|at| now_secs >= at) {
            return Err(self.refuse(Refusal::Expired, peer));
        }
        let mut identity = Identity {
            user_id: token.user_id,
            user_name: token.user_name.clone(),
            client: token.client.clone(),
            role: if token.admin { Role::Admin } else { Role::User },
        };
        let scope = match act_for {
            None if token.admin => Scope::All,
            None => Scope::Client(identity.client.clone()),
            Some(client) => {
                check_client_name(client)?;
                if !token.admin && client != identity.client {
                    return Err(AuthError::Forbidden(format!(
                        "Only an administrator's token may act for another client: this token \
                         is client {}'s, and X-Taskbox-Client names {client}.",
                        identity.client
                    )));
                }
                identity.client = client.to_string();
                Scope::Client(client.to_string())
            }
        };
        Ok(Caller { identity, scope })
    }

    /// Counts a failure from `peer` and logs it (the first few of an address, then one in
    /// a hundred, so that a flood does not fill the disk with its log).
    fn refuse(&self, why: Refusal, peer: Option<IpAddr>) -> AuthError {
        let (delay, count) = self.throttle.failed(peer, Instant::now());
        if count <= 3 || count % 100 == 0 {
            let from = peer.map_or_else(|| "an unknown address".to_string(), |p| p.to_string());
            log::warn!(
                "authentication failed from {from}: {why} ({count} failure(s) from there lately; \
                 answer held {} ms)",
                delay.as_millis()
            );
        }
        AuthError::Refused { why, delay }
    }
}

/// The open user, who may not act for another client (there is only `default`).
fn open_caller(act_for: Option<&str>) -> Result<Caller, AuthError> {
    let identity = Identity::open();
    if let Some(client) = act_for.filter(|c| *c != identity.client) {
        return Err(AuthError::Forbidden(format!(
            "The service runs without tokens, with one client ({}): X-Taskbox-Client \
             cannot name {client}. Create tokens (taskbox token create) to have clients.",
            identity.client
        )));
    }
    let scope = Scope::Client(identity.client.clone());
    Ok(Caller { identity, scope })
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A client's name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn is_valid_client_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLIENT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_client_name(name: &str) -> Result<(), AuthError> {
    if is_valid_client_name(name) {
        Ok(())
    } else {
        Err(AuthError::Forbidden(format!(
            "X-Taskbox-Client must name a client: 1 to {MAX_CLIENT_LEN} letters, digits, '-', \
             '_' or '.'."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
