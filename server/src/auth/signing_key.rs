//! The HMAC key that signs access tokens. Given with `--signing-key`, or generated once and kept
//! in the data directory (file mode 0600) so that tokens survive restarts.
//!
//! The key id (`kid`) is derived from the key, so rotating the key retires every token signed
//! with the old one. This module does not sign or verify anything itself.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Shortest accepted key: HS256 wants at least as many key bytes as the hash output.
pub const MIN_KEY_BYTES: usize = 32;
const KEY_FILE: &str = "jwt-signing.key";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("the signing key must be at least {MIN_KEY_BYTES} bytes, got {0}")]
    TooShort(usize),
    #[error("signing key file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("signing key file {0} does not hold a hex key")]
    Malformed(String),
    #[error("cannot generate a signing key: {0}")]
    Random(String),
}

pub struct SigningKey {
    secret: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_secret(secret: &[u8]) -> Result<Self, SigningKeyError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(SigningKeyError::TooShort(secret.len()));
        }
        let digest = Sha256::digest(secret);
        Ok(Self {
            kid: hex::encode(&digest[..8]),
            secret: secret.to_vec(),
        })
    }

    /// Uses `given` when present, otherwise the key file in `data_dir`, creating it on first use.
    pub fn load_or_create(given: Option<&str>, data_dir: &Path) -> Result<Self, SigningKeyError> {
        if let Some(given) = given {
            return Self::from_secret(given.as_bytes());
        }
        let path = data_dir.join(KEY_FILE);
        let io_err = |source| SigningKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let secret = hex::decode(text.trim())
                    .map_err(|_| SigningKeyError::Malformed(path.display().to_string()))?;
                Self::from_secret(&secret)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let mut secret = [0u8; MIN_KEY_BYTES];
                getrandom::fill(&mut secret).map_err(|e| SigningKeyError::Random(e.to_string()))?;
                write_private(&path, hex::encode(secret).as_bytes()).map_err(io_err)?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                Self::from_secret(&secret)
            }
            Err(err) => Err(io_err(err)),
        }
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// Creates the file readable by its owner only; fails rather than overwrite an existing key.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = SigningKey::load_or_create(None, dir.path()).unwrap();
        let second = SigningKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.secret(), second.secret());
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn given_key_wins_and_short_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let given = "k".repeat(40);
        let key = SigningKey::load_or_create(Some(&given), dir.path()).unwrap();
        assert_eq!(key.secret(), given.as_bytes());
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(matches!(
            SigningKey::from_secret(b"short"),
            Err(SigningKeyError::TooShort(5))
        ));
    }
}
