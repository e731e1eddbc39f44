//! A token's text: `tbx_<id>_<secret>`, where the secret is 256 bits from the operating
//! system's generator written as 64 hex digits. The id finds the stored token with one
//! lookup; the secret is kept only as its SHA-256 and compared in constant time. A fast
//! hash is enough: the secret is random, not a password, so there is nothing to guess.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "tbx_";
const SECRET_BYTES: usize = 32;

/// A token's text split into its parts (not yet checked against the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: i64,
    pub secret: &'a str,
}

/// A new token: its text, shown once, and the hash to store.
pub struct Minted {
    pub secret: String,
    pub hash: [u8; 32],
}

/// A new random secret and its hash.
pub fn mint() -> Result<Minted, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash(&secret);
    Ok(Minted { secret, hash })
}

/// The text a client sends for token `id` with `secret`.
pub fn text(id: i64, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// Splits a token's text; `None` when it is not one taskbox made.
pub fn parse(text: &str) -> Option<Presented<'_>> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if secret.len() != SECRET_BYTES * 2 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Presented {
        id: id.parse().ok()?,
        secret,
    })
}

/// SHA-256 of a secret's text.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `secret` is the one whose hash is `stored`, in time that does not depend on
/// where they differ.
pub fn matches(secret: &str, stored: &[u8; 32]) -> bool {
    hash(secret).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_secret_reads_back_and_matches_only_itself() {
        let minted = mint().unwrap();
        let other = mint().unwrap();
        assert_ne!(minted.secret, other.secret);
        let text = text(42, &minted.secret);
        let presented = parse(&text).unwrap();
        assert_eq!(presented.id, 42);
        assert!(matches(presented.secret, &minted.hash));
        assert!(!matches(presented.secret, &other.hash));
    }

    #[test]
    fn text_that_taskbox_did_not_make_is_no_token() {
        let secret = "ab".repeat(32);
        for bad in [
            String::new(),
            "tbx_".into(),
            format!("tbx__{secret}"),
            format!("tbx_x1_{secret}"),
            format!("tbx_1_{}", &secret[1..]),
            format!("tbx_1_{secret}0"),
            format!("tbx_1_{}", "zz".repeat(32)),
            format!("xyz_1_{secret}"),
            format!("tbx_{}_{secret}", "9".repeat(19)),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        assert!(parse(&format!("tbx_1_{secret}")).is_some());
    }
}
