//! The `taskbox token` commands: create, list and revoke the tokens of a database file,
//! while a server runs on it or not. The server honours a change from its next request
//! (see keyring.rs). A new token's text goes alone to stdout, to be captured by a script;
//! what it is goes to stderr.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::clock::{format_ms, Clock, SystemClock};
use crate::store::{NewToken, TokenBook, TokenRecord};

use super::{is_valid_client_name, secret, MAX_CLIENT_LEN};

/// The longest user name a token may carry.
pub const MAX_USER_NAME_LEN: usize = 200;
/// The longest a token may live.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// What `token create` is asked for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub user_id: i64,
    pub user_name: String,
    pub client: String,
    pub admin: bool,
    /// How long it lives (`None`: until revoked).
    pub expires_in: Option<Duration>,
}

/// Parses a lifetime: a number and a unit, `s`, `m`, `h`, `d` or `w` (`90d`, `12h`).
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("--expires takes a number and a unit (s, m, h, d or w), such as 90d or 12h; not {text:?}")
    };
    let text = text.trim();
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let lifetime = Duration::from_secs(n.checked_mul(unit_secs).ok_or_else(bad)?);
    if lifetime < Duration::from_secs(60) || lifetime > MAX_LIFETIME {
        return Err(format!(
            "--expires must be between 1 minute and 10 years; {text} is not"
        ));
    }
    Ok(lifetime)
}

fn check(request: &CreateRequest) -> Result<(), String> {
    if request.user_id < 0 {
        return Err("--user-id must be 0 or more".into());
    }
    if request.user_name.chars().count() > MAX_USER_NAME_LEN
        || request.user_name.chars().any(char::is_control)
    {
        return Err(format!(
            "--user-name must be at most {MAX_USER_NAME_LEN} characters, none of them control characters"
        ));
    }
    if !is_valid_client_name(&request.client) {
        return Err(format!(
            "--client must be 1 to {MAX_CLIENT_LEN} letters, digits, '-', '_' or '.'; not {:?}",
            request.client
        ));
    }
    Ok(())
}

/// Makes a token in the database at `db`; prints its text to `out` and what it is to `err`.
pub fn create(
    db: &Path,
    request: &CreateRequest,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), String> {
    check(request)?;
    let book = open(db)?;
    let minted =
        secret::mint().map_err(|e| format!("the system's random generator failed: {e}"))?;
    let now_ms = SystemClock.now_ms();
    let expires_at = request
        .expires_in
        .map(|d| now_ms.div_euclid(1000) + d.as_secs() as i64);
    let new = NewToken {
        secret_hash: minted.hash,
        user_id: request.user_id,
        user_name: request.user_name.clone(),
        client: request.client.clone(),
        admin: request.admin,
        expires_at,
    };
    let id = book
        .create(&new, &format_ms(now_ms))
        .map_err(|e| format!("cannot store the token in {}: {e}", db.display()))?;
    let written = writeln!(out, "{}", secret::text(id, &minted.secret)).and_then(|()| {
        writeln!(
            err,
            "Token {id}: user {} ({:?}), client {}, {}, {}.\nIt is shown only this once: keep \
             it now. Send it as `Authorization: Bearer <token>`; revoke it with \
             `taskbox token revoke {id}`.",
            request.user_id,
            request.user_name,
            request.client,
            role(request.admin),
            expiry(expires_at),
        )
    });
    written.map_err(|e| format!("cannot print the token: {e}"))
}

/// Prints every token (never a secret) to `out`.
pub fn list(db: &Path, out: &mut dyn Write) -> Result<(), String> {
    let book = open(db)?;
    let tokens = book
        .list()
        .map_err(|e| format!("cannot read the tokens of {}: {e}", db.display()))?;
    let now_secs = SystemClock.now_ms().div_euclid(1000);
    let mut text = String::from("ID\tSTATE\tROLE\tCLIENT\tUSER_ID\tUSER_NAME\tCREATED\tEXPIRES\n");
    for t in &tokens {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}Z\t{}\n",
            t.id,
            state(t, now_secs),
            role(t.admin),
            t.client,
            t.user_id,
            t.user_name,
            t.created_at,
            t.expires_at
                .map_or_else(|| "never".to_string(), |s| format_ms(s * 1000) + "Z"),
        ));
    }
    if tokens.is_empty() {
        text.push_str("(no tokens: the service runs open, on loopback only)\n");
    }
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot print the tokens: {e}"))
}

/// Revokes token `id`; says so on `err`.
pub fn revoke(db: &Path, id: i64, err: &mut dyn Write) -> Result<(), String> {
    let book = open(db)?;
    let now = format_ms(SystemClock.now_ms());
    let revoked = book
        .revoke(id, &now)
        .map_err(|e| format!("cannot revoke token {id} in {}: {e}", db.display()))?
        .ok_or_else(|| {
            format!(
                "there is no token {id} in {} (see taskbox token list)",
                db.display()
            )
        })?;
    writeln!(
        err,
        "Token {id} (user {}, client {}) is revoked since {}Z: a running server refuses it from \
         its next request.",
        revoked.user_id,
        revoked.client,
        revoked.revoked_at.as_deref().unwrap_or(&now)
    )
    .map_err(|e| format!("cannot print: {e}"))
}

fn open(db: &Path) -> Result<TokenBook, String> {
    TokenBook::open(db).map_err(|e| format!("cannot open {}: {e}", db.display()))
}

fn role(admin: bool) -> &'static str {
    if admin {
        "admin"
    } else {
        "user"
    }
}

fn expiry(expires_at: Option<i64>) -> String {
    match expires_at {
        Some(secs) => format!("expires {}Z", format_ms(secs * 1000)),
        None => "never expires".into(),
    }
}

fn state(token: &TokenRecord, now_secs: i64) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| now_secs >= at) {
        "expired"
    } else {
        "active"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_as_people_write_them() {
        assert_eq!(parse_lifetime("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_lifetime("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_lifetime("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "d", "90", "90x", "-1d", "1.5d", "30s", "99999w"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_is_printed_once_listed_without_its_secret_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let request = CreateRequest {
            user_id: 5,
            user_name: "Smith, John".into(),
            client: "acme".into(),
            admin: false,
            expires_in: Some(Duration::from_secs(90 * 86_400)),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        create(&db, &request, &mut out, &mut err).unwrap();
        let text = String::from_utf8(out).unwrap();
        let token = text.trim();
        let presented = secret::parse(token).unwrap();
        let mut listed = Vec::new();
        list(&db, &mut listed).unwrap();
        let listed = String::from_utf8(listed).unwrap();
        assert!(
            listed.contains("\tactive\tuser\tacme\t5\tSmith, John\t"),
            "{listed}"
        );
        assert!(!listed.contains(presented.secret), "{listed}");

        let mut said = Vec::new();
        revoke(&db, presented.id, &mut said).unwrap();
        let mut listed = Vec::new();
        list(&db, &mut listed).unwrap();
        assert!(String::from_utf8(listed).unwrap().contains("\trevoked\t"));
        let unknown = revoke(&db, presented.id + 1, &mut Vec::new()).unwrap_err();
        assert!(unknown.contains("there is no token"), "{unknown}");

        let bad = CreateRequest {
            client: "a b".into(),
            ..request
        };
        assert!(create(&db, &bad, &mut Vec::new(), &mut Vec::new())
            .unwrap_err()
            .contains("--client"));
    }
}
