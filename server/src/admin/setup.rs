//! One-time setup codes: people the office imports get no password; the office hands each one
//! a code (a printed list) and they choose their own password at first sign-in, on the phone or
//! the desk. A code is 12 characters from 31 unambiguous letters and digits (about 59 bits,
//! from the operating system's generator), kept only as a SHA-256 of user id and code, works
//! once, and expires after [`SETUP_CODE_DAYS`] days. Wrong codes are throttled like wrong
//! passwords.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::storage::Store;

pub const SETUP_CODE_DAYS: i64 = 14;
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const CODE_CHARS: usize = 12;

/// A code as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCode {
    pub hash: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
}

pub fn key(user_id: &str) -> String {
    format!("setup.code/{user_id}")
}

fn hash(user_id: &str, code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(
        format!("{user_id}\0{normalized}").as_bytes(),
    ))
}

/// A fresh code for the user: the code to hand over (`XXXX-XXXX-XXXX`) and what is stored.
pub fn issue(user_id: &str, now_ms: i64) -> Result<(String, StoredCode), ApiError> {
    let mut code = String::with_capacity(CODE_CHARS + 2);
    let mut filled = 0;
    while filled < CODE_CHARS {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
        // Rejection sampling keeps every character equally likely.
        for b in bytes {
            if filled == CODE_CHARS {
                break;
            }
            if usize::from(b) < 256 - 256 % ALPHABET.len() {
                if filled > 0 && filled % 4 == 0 {
                    code.push('-');
                }
                code.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
                filled += 1;
            }
        }
    }
    let stored = StoredCode {
        hash: hash(user_id, &code),
        issued_at_ms: now_ms,
        expires_at_ms: now_ms + SETUP_CODE_DAYS * 86_400_000,
        used_at_ms: None,
    };
    Ok((code, stored))
}

pub fn encode(stored: &StoredCode) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(stored).map_err(|e| ApiError::Internal(e.to_string()))
}

pub fn load(store: &dyn Store, user_id: &str) -> Result<Option<StoredCode>, ApiError> {
    match store.get_meta(&key(user_id))? {
        Some(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?,
        )),
        None => Ok(None),
    }
}

/// Whether `code` is the user's live code: issued, not used, not expired.
pub fn accepts(stored: Option<&StoredCode>, user_id: &str, code: &str, now_ms: i64) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    let given = hash(user_id, code);
    // Compared in constant time: the hashes are of a secret.
    let same = given.len() == stored.hash.len()
        && given
            .bytes()
            .zip(stored.hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same && stored.used_at_ms.is_none() && now_ms < stored.expires_at_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_work_once_for_their_user_until_they_expire() {
        let (code, stored) = issue("u1", 1_000).unwrap();
        assert_eq!(code.len(), 14);
        assert!(accepts(Some(&stored), "u1", &code, 2_000));
        assert!(accepts(
            Some(&stored),
            "u1",
            &code.to_lowercase().replace('-', " "),
            2_000
        ));
        assert!(!accepts(Some(&stored), "u2", &code, 2_000));
        assert!(!accepts(Some(&stored), "u1", "2222-2222-2222", 2_000));
        assert!(!accepts(Some(&stored), "u1", &code, stored.expires_at_ms));
        let used = StoredCode {
            used_at_ms: Some(3_000),
            ..stored
        };
        assert!(!accepts(Some(&used), "u1", &code, 4_000));
        assert!(!accepts(None, "u1", &code, 4_000));
        let (other, _) = issue("u1", 1_000).unwrap();
        assert_ne!(code, other);
    }
}
