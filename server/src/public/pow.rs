//! A small proof of work (hashcash) over a challenge the server issued: find a nonce such that
//! SHA-256(`challenge:nonce`) starts with `bits` zero bits. A person's phone spends about a
//! second on it once per report; a script filing thousands spends that much per report too,
//! on top of the rate limits. Challenges are single-use and expire after ten minutes.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// How long an issued challenge may be answered.
pub const CHALLENGE_TTL_MS: i64 = 10 * 60 * 1000;
/// Challenges held at once; past that the oldest are forgotten.
const MAX_OPEN: usize = 100_000;

#[derive(Debug, Default)]
pub struct Challenges {
    open: Mutex<HashMap<String, (i64, u32)>>,
}

/// Why an answer was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PowError {
    /// Not a challenge this server issued, already used, or expired.
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

impl Challenges {
    /// A fresh random challenge needing `bits`.
    pub fn issue(&self, bits: u32, now_ms: i64) -> String {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).expect("the system's random source");
        let challenge = hex::encode(raw);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, (at, _)| now_ms - *at < CHALLENGE_TTL_MS);
        if open.len() >= MAX_OPEN {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(challenge.clone(), (now_ms, bits));
        challenge
    }

    /// Checks an answer and uses the challenge up (an answer counts once, right or wrong).
    pub fn redeem(&self, challenge: &str, nonce: &str, now_ms: i64) -> Result<(), PowError> {
        let taken = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(challenge);
        let Some((at, bits)) = taken else {
            return Err(PowError::UnknownChallenge);
        };
        if now_ms - at >= CHALLENGE_TTL_MS {
            return Err(PowError::UnknownChallenge);
        }
        if nonce.len() > 32 || zero_bits(challenge, nonce) < bits {
            return Err(PowError::NotEnoughWork { bits });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solved_challenge_counts_once_and_a_guess_does_not() {
        let c = Challenges::default();
        let ch = c.issue(8, 0);
        let nonce = solve(&ch, 8);
        assert!(zero_bits(&ch, &nonce) >= 8);
        assert_eq!(c.redeem(&ch, &nonce, 1), Ok(()));
        assert_eq!(c.redeem(&ch, &nonce, 2), Err(PowError::UnknownChallenge));
        let ch = c.issue(30, 0);
        assert_eq!(
            c.redeem(&ch, "0", 1),
            Err(PowError::NotEnoughWork { bits: 30 })
        );
        let ch = c.issue(1, 0);
        assert_eq!(
            c.redeem(&ch, &solve(&ch, 1), CHALLENGE_TTL_MS),
            Err(PowError::UnknownChallenge)
        );
    }
}
