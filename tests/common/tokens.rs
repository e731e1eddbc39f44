//! Access tokens, made and revoked with the real `taskbox token` commands on a server's
//! database (while it runs), and requests that carry them.

use std::path::Path;
use std::process::Command;

use super::Server;

/// A token: its id (as `token revoke` takes it) and its text.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub text: String,
}

impl Token {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.text)
    }
}

fn taskbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_taskbox"))
        .args(args)
        .env_remove("TASKBOX_DB")
        .output()
        .expect("run taskbox")
}

/// `taskbox token create --db DB --user-id .. --user-name .. --client .. [extra]`.
pub fn create_token_in(
    db: &Path,
    user_id: i64,
    user_name: &str,
    client: &str,
    extra: &[&str],
) -> Token {
    let db = db.to_str().expect("a UTF-8 path");
    let user_id = user_id.to_string();
    let mut args = vec![
        "token",
        "create",
        "--db",
        db,
        "--user-id",
        &user_id,
        "--user-name",
        user_name,
        "--client",
        client,
    ];
    args.extend_from_slice(extra);
    let out = taskbox(&args);
    assert!(
        out.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string();
    let id = text
        .strip_prefix("tbx_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a token: {text:?}"));
    Token { id, text }
}

/// A user token of `client` on the server's database.
pub fn create_token(server: &Server, user_id: i64, user_name: &str, client: &str) -> Token {
    create_token_in(&server.db_path(), user_id, user_name, client, &[])
}

/// An administrator's token on the server's database.
pub fn create_admin_token(server: &Server, user_id: i64, client: &str) -> Token {
    create_token_in(&server.db_path(), user_id, "admin", client, &["--admin"])
}

/// `taskbox token revoke ID --db DB`; what it printed.
pub fn revoke_token(server: &Server, token: &Token) -> String {
    let db = server.db_path();
    let out = taskbox(&[
        "token",
        "revoke",
        &token.id.to_string(),
        "--db",
        db.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `taskbox token list --db DB`.
pub fn list_tokens(server: &Server) -> String {
    let db = server.db_path();
    let out = taskbox(&["token", "list", "--db", db.to_str().expect("a UTF-8 path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every route the binary serves (`taskbox routes`): method and path pattern.
pub fn routes() -> Vec<(String, String)> {
    let out = taskbox(&["routes"]);
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let method = parts.next().expect("a method").to_string();
            let path = parts.next().expect("a path").to_string();
            (method, path)
        })
        .collect()
}

/// Makes token `id` expired, as time would: its expiry moved to the past in the database
/// (a running server sees the change at its next request, as it sees `token revoke`'s).
pub fn expire_token(server: &Server, token: &Token) {
    let conn = rusqlite::Connection::open(server.db_path()).expect("open the database");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let changed = conn
        .execute("UPDATE tokens SET expires_at = 1 WHERE id = ?1", [token.id])
        .expect("expire the token");
    assert_eq!(changed, 1);
}
