//! A small proof of work (hashcash) over a challenge the server issued: find a nonce such that
//! SHA-256(`challenge:nonce`) starts with `bits` zero bits. A person's phone spends about a
//! second on it once per report; a script filing thousands spends that much per report too,
//! on top of the rate limits. Challenges are single-use and expire after ten minutes. They are
//! kept where every server reads them ([`Shared::kept`]): a challenge fetched through one
//! server may be answered through another, once.

use sha2::{Digest, Sha256};

use crate::storage::{Shared, StoreError};

/// How long an issued challenge may be answered.
pub const CHALLENGE_TTL_MS: i64 = 10 * 60 * 1000;

/// Why an answer was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PowError {
    /// Not a challenge a server of this store issued, already used, or expired.
    UnknownChallenge,
    /// The hash does not have enough leading zero bits.
    NotEnoughWork { bits: u32 },
}

/// Leading zero bits of SHA-256(`challenge:nonce`).
pub fn zero_bits(challenge: &str, nonce: &str) -> u32 {
    let digest = Sha256::digest(format!("{challenge}:{nonce}").as_bytes());
    let mut bits = 0;
    for byte in digest.iter() {
        if *byte == 0 {
            bits += 8;
        } else {
            bits += byte.leading_zeros();
            break;
        }
    }
    bits
}

/// Finds a nonce for `challenge` (what the page's script does; tests use it too).
pub fn solve(challenge: &str, bits: u32) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| zero_bits(challenge, n) >= bits)
        .unwrap_or_default()
}

fn key(challenge: &str) -> String {
    format!("public.challenge/{challenge}")
}

/// A fresh random challenge needing `bits`, kept for [`CHALLENGE_TTL_MS`].
pub fn issue(store: &dyn Shared, bits: u32, now_ms: i64) -> Result<String, StoreError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| StoreError::Backend(format!("randomness: {e}")))?;
    let challenge = hex::encode(raw);
    let kept = store.keep(
        &key(&challenge),
        None,
        bits.to_string().as_bytes(),
        now_ms.saturating_add(CHALLENGE_TTL_MS),
        now_ms,
    )?;
    if !kept {
        return Err(StoreError::Conflict(key(&challenge)));
    }
    Ok(challenge)
}

/// Checks an answer and uses the challenge up (an answer counts once, right or wrong, on
/// whichever server it arrives).
pub fn redeem(
    store: &dyn Shared,
    challenge: &str,
    nonce: &str,
    now_ms: i64,
) -> Result<Result<(), PowError>, StoreError> {
    // Issued challenges are 32 hex digits; anything else was never issued.
    if challenge.len() != 32 || !challenge.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err(PowError::UnknownChallenge));
    }
    let Some(bits) = store.take_kept(&key(challenge), now_ms)? else {
        return Ok(Err(PowError::UnknownChallenge));
    };
    let bits: u32 = String::from_utf8_lossy(&bits).parse().unwrap_or(u32::MAX);
    if nonce.len() > 32 || zero_bits(challenge, nonce) < bits {
        return Ok(Err(PowError::NotEnoughWork { bits }));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalShared;

    #[test]
    fn a_solved_challenge_counts_once_and_a_guess_does_not() {
        let c = LocalShared::default();
        let ch = issue(&c, 8, 0).unwrap();
        let nonce = solve(&ch, 8);
        assert!(zero_bits(&ch, &nonce) >= 8);
        assert_eq!(redeem(&c, &ch, &nonce, 1).unwrap(), Ok(()));
        assert_eq!(
            redeem(&c, &ch, &nonce, 2).unwrap(),
            Err(PowError::UnknownChallenge)
        );
        let ch = issue(&c, 30, 0).unwrap();
        assert_eq!(
            redeem(&c, &ch, "0", 1).unwrap(),
            Err(PowError::NotEnoughWork { bits: 30 })
        );
        let ch = issue(&c, 1, 0).unwrap();
        assert_eq!(
            redeem(&c, &ch, &solve(&ch, 1), CHALLENGE_TTL_MS).unwrap(),
            Err(PowError::UnknownChallenge)
        );
        assert_eq!(
            redeem(&c, "not-a-challenge", "0", 1).unwrap(),
            Err(PowError::UnknownChallenge)
        );
    }
}
