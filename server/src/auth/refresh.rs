//! Opaque random secrets: refresh tokens (the client keeps the token, the store keeps only its
//! SHA-256) and automerge actor ids. Nothing here touches storage.

use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Bytes of randomness in a refresh token (256 bits).
const REFRESH_TOKEN_BYTES: usize = 32;
/// Bytes in an automerge actor id (rendered as 32 hex characters).
const ACTOR_ID_BYTES: usize = 16;

fn random_hex(len: usize) -> Result<String, ApiError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A new refresh token and the hash to store for it.
pub fn new_refresh_token() -> Result<(String, String), ApiError> {
    let token = random_hex(REFRESH_TOKEN_BYTES)?;
    let hash = hash_refresh_token(&token);
    Ok((token, hash))
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh automerge actor id: 16 random bytes as lower-case hex.
pub fn new_actor_id() -> Result<String, ApiError> {
    random_hex(ACTOR_ID_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, hash_a) = new_refresh_token().unwrap();
        let (b, _) = new_refresh_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash_a, hash_refresh_token(&a));
        assert_ne!(hash_a, a);
        let actor = new_actor_id().unwrap();
        assert_eq!(actor.len(), 32);
        assert!(actor
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
