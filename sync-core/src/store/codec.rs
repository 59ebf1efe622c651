//! How the local store lays its keys and values out on disk.
//!
//! Keys are NUL-separated parts (`doc\0<id>\0chunk\0<seq>`), so one id can never be a prefix of
//! another's range. Values are sealed: a format byte and a CRC32 over key and payload precede the
//! payload. Covering the key as well catches a value that ended up under the wrong key. This
//! module knows nothing of what the payloads mean.

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 5;

/// Builds a key from parts. Parts that come from callers must have passed [`check_id`].
pub(super) fn key(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// The prefix covering every key that starts with `parts` as whole parts.
pub(super) fn prefix(parts: &[&str]) -> Vec<u8> {
    let mut out = key(parts);
    out.push(0);
    out
}

/// A key as people read it in error reports (`doc/abc/chunk/…`).
pub(super) fn display_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\0', "/")
}

/// Ids become key parts, so they must be non-empty and free of the separator.
pub(super) fn check_id(what: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.contains('\0') {
        return Err(StoreError::InvalidId {
            what,
            id: id.to_owned(),
        });
    }
    Ok(())
}

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

pub(super) fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&checksum(key, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a sealed value, or `Corrupt` if the header or checksum does not hold.
pub(super) fn unseal<'a>(key: &[u8], stored: &'a [u8]) -> Result<&'a [u8], StoreError> {
    let corrupt = || StoreError::Corrupt {
        key: display_key(key),
    };
    if stored.len() < HEADER_LEN || stored[0] != FORMAT_V1 {
        return Err(corrupt());
    }
    let (header, payload) = stored.split_at(HEADER_LEN);
    let expected = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if checksum(key, payload) != expected {
        return Err(corrupt());
    }
    Ok(payload)
}

pub(super) fn seal_json<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    let payload = serde_json::to_vec(value).map_err(|source| StoreError::Codec {
        key: display_key(key),
        source,
    })?;
    Ok(seal(key, &payload))
}

pub(super) fn unseal_json<T: DeserializeOwned>(key: &[u8], stored: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(unseal(key, stored)?).map_err(|source| StoreError::Codec {
        key: display_key(key),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_round_trips() {
        let k = key(&["doc", "p1", "base"]);
        assert_eq!(display_key(&k), "doc/p1/base");
        let sealed = seal(&k, b"payload");
        assert_eq!(unseal(&k, &sealed).unwrap(), b"payload");
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let k = key(&["meta", "device"]);
        let sealed = seal(&k, b"some bytes worth protecting");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    matches!(unseal(&k, &damaged), Err(StoreError::Corrupt { .. })),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_or_moved_values_are_corrupt() {
        let k = key(&["meta", "a"]);
        let sealed = seal(&k, b"x");
        assert!(matches!(
            unseal(&k, &sealed[..3]),
            Err(StoreError::Corrupt { .. })
        ));
        let other = key(&["meta", "b"]);
        assert!(matches!(
            unseal(&other, &sealed),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn ids_with_separators_are_refused() {
        assert!(check_id("document id", "a\0b").is_err());
        assert!(check_id("document id", "").is_err());
        assert!(check_id("document id", "0190a1b2-patrol").is_ok());
    }
}
