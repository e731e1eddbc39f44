//! Every task's UUID, without a column or an index: the UUID is the task's id encrypted
//! with AES-128 under a key kept in the database (`keys.task_uuid`, made at random by
//! migration 5), and the id is the UUID decrypted. So a UUID is unique per task, looks
//! random (it says nothing of how many tasks there are), differs between installations,
//! and costs a submission nothing.
//!
//! The UUID is a well-formed version-4 UUID: the block cipher is applied again until its
//! output has the version and variant bits of one ("cycle walking", which keeps it a
//! permutation of well-formed UUIDs; about 64 rounds, a microsecond). Decrypting walks the
//! same cycle back. An id is laid out in the UUID's free bits with every other bit zero, so
//! a UUID that taskbox did not make decrypts to something that is not an id (the chance of
//! a forgery passing is 2^-66) and is answered as unknown.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;
use rusqlite::Connection;

use super::{Result, StoreError};
use crate::task::TaskId;

/// The key and its cipher.
#[derive(Clone)]
pub struct TaskUuids {
    cipher: Aes128,
}

impl std::fmt::Debug for TaskUuids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskUuids(..)")
    }
}

impl TaskUuids {
    /// Reads the key from the database.
    pub(super) fn load(conn: &Connection) -> Result<TaskUuids> {
        let key: Vec<u8> =
            conn.query_row("SELECT value FROM keys WHERE name = 'task_uuid'", [], |r| {
                r.get(0)
            })?;
        let key: [u8; 16] = key
            .try_into()
            .map_err(|_| StoreError::Internal("the task UUID key is not 16 bytes long".into()))?;
        Ok(TaskUuids::with_key(key))
    }

    fn with_key(key: [u8; 16]) -> TaskUuids {
        TaskUuids {
            cipher: Aes128::new(&GenericArray::from(key)),
        }
    }

    /// Task `id`'s UUID, as `8-4-4-4-12` lower-case hex.
    pub fn of(&self, id: TaskId) -> String {
        let mut block = GenericArray::from(embed(id));
        loop {
            self.cipher.encrypt_block(&mut block);
            if is_v4(&block) {
                break;
            }
        }
        format_uuid(&block.into())
    }

    /// The id of the task whose UUID `text` is; `None` when no task of this database can
    /// have it (malformed, or made elsewhere).
    pub fn id_of(&self, text: &str) -> Option<TaskId> {
        let bytes = parse_uuid(text)?;
        if !is_v4(&bytes) {
            return None;
        }
        let mut block = GenericArray::from(bytes);
        loop {
            self.cipher.decrypt_block(&mut block);
            if is_v4(&block) {
                break;
            }
        }
        extract(&block.into())
    }
}

fn is_v4(b: &[u8]) -> bool {
    b[6] >> 4 == 4 && b[8] >> 6 == 2
}

/// The id in the free bits: its top byte in byte 7, the rest in bytes 9 to 15; every other
/// free bit zero.
fn embed(id: TaskId) -> [u8; 16] {
    let id = id.to_be_bytes();
    let mut b = [0u8; 16];
    b[6] = 0x40;
    b[7] = id[0];
    b[8] = 0x80;
    b[9..16].copy_from_slice(&id[1..8]);
    b
}

fn extract(b: &[u8; 16]) -> Option<TaskId> {
    if b[..6].iter().any(|&x| x != 0) || b[6] != 0x40 || b[8] != 0x80 {
        return None;
    }
    let mut id = [0u8; 8];
    id[0] = b[7];
    id[1..8].copy_from_slice(&b[9..16]);
    Some(TaskId::from_be_bytes(id)).filter(|&id| id > 0)
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Reads `8-4-4-4-12` hex (either case).
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let t = text.as_bytes();
    if t.len() != 36 || [8, 13, 18, 23].iter().any(|&i| t[i] != b'-') {
        return None;
    }
    let digits: Vec<u8> = t.iter().copied().filter(|&c| c != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_a_version_4_uuid_that_reads_back_to_its_task_only() {
        let uuids = TaskUuids::with_key([9; 16]);
        let mut seen = std::collections::HashSet::new();
        for id in (1..2000).chain([i64::MAX, 1 << 40]) {
            let uuid = uuids.of(id);
            assert_eq!(uuid.len(), 36);
            assert_eq!(&uuid[14..15], "4", "{uuid}");
            assert!("89ab".contains(&uuid[19..20]), "{uuid}");
            assert_eq!(uuids.id_of(&uuid), Some(id));
            assert_eq!(uuids.id_of(&uuid.to_uppercase()), Some(id));
            assert!(seen.insert(uuid));
        }
        // Another installation's key makes other UUIDs, which this one does not know.
        let other = TaskUuids::with_key([10; 16]);
        assert_ne!(other.of(1), uuids.of(1));
        assert_eq!(uuids.id_of(&other.of(1)), None);
    }

    #[test]
    fn text_that_is_no_uuid_of_ours_names_no_task() {
        let uuids = TaskUuids::with_key([9; 16]);
        let good = uuids.of(7);
        for bad in [
            "",
            "7",
            "not-a-uuid",
            &good[1..],
            &good.replace('-', ""),
            "00000000-0000-4000-8000-000000000007",
            "zzzzzzzz-zzzz-4zzz-8zzz-zzzzzzzzzzzz",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            assert_eq!(uuids.id_of(bad), None, "{bad}");
        }
    }
}
