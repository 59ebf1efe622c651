//! Access tokens: HS256 JWTs with `sub` (user id), `dev` (device id), `sess` (device session),
//! `iss`, `aud`, `iat`, `nbf`, `exp` and the signing key's `kid` in the header.
//!
//! Verification refuses every algorithm but HS256 (including `none`, which the JWT library cannot
//! even parse), an unknown `kid`, a bad signature, expiry, a `nbf` in the future, a wrong audience
//! or issuer, and time claims that are not numbers (`"exp": "9999999999"`), and names the failed
//! check. Whether the user is active and the device session still live is
//! checked by the caller extractor against storage, not here.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::signing_key::SigningKey;
use crate::error::{ApiError, ErrorCode};

pub const ISSUER: &str = "chiefsync";
pub const AUDIENCE: &str = "chiefsync-api";
/// Clock skew tolerated on `exp` and `nbf`, seconds.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub dev: String,
    pub sess: u64,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    /// Not before. Tokens signed before `nbf` was issued lack it; they are valid from `iat`.
    #[serde(default)]
    pub nbf: u64,
    pub exp: u64,
}

pub struct TokenService {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl_secs: u64,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("kid", &self.kid)
            .field("access_ttl_secs", &self.access_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    pub fn new(
        key: &SigningKey,
        access_ttl_secs: u64,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            kid: key.kid().to_owned(),
            encoding: EncodingKey::from_secret(key.secret())?,
            decoding: DecodingKey::from_secret(key.secret())?,
            validation,
            access_ttl_secs,
        })
    }

    pub fn access_ttl_secs(&self) -> u64 {
        self.access_ttl_secs
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs an access token for (user, device, session), valid from `now_secs`.
    pub fn issue(
        &self,
        user_id: &str,
        device_id: &str,
        session: u64,
        now_secs: u64,
    ) -> Result<String, ApiError> {
        let claims = Claims {
            sub: user_id.to_owned(),
            dev: device_id.to_owned(),
            sess: session,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now_secs,
            nbf: now_secs,
            exp: now_secs + self.access_ttl_secs,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))
    }

    /// The refresh token that replaces `token` when it is exchanged: an HMAC of it under the
    /// signing key, so a retried exchange answers the very same successor without the server
    /// ever storing a token itself, and nobody without the key can compute it. The message is
    /// prefixed so it can never be mistaken for the signing input of an access token.
    pub fn successor_refresh_token(&self, token: &str) -> Result<String, ApiError> {
        let message = format!("chiefsync refresh successor\0{token}");
        let mac = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::HS256)
            .map_err(|e| ApiError::Internal(format!("deriving a refresh token: {e}")))?;
        Ok(hex::encode(Sha256::digest(mac.as_bytes())))
    }

    /// Checks algorithm, key id, signature, expiry, not-before, audience and issuer.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            ApiError::unauthorized(ErrorCode::InvalidToken, "malformed token header")
        })?;
        if header.alg != Algorithm::HS256 {
            return Err(ApiError::unauthorized(
                ErrorCode::InvalidAlgorithm,
                "only HS256 tokens are accepted",
            ));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(ApiError::unauthorized(
                ErrorCode::UnknownKey,
                "token signed with an unknown key",
            ));
        }
        // Decoded loosely first, so that the library's checks of the time, audience and issuer
        // claims run (and name what failed) before the claims are read into their types.
        let claims =
            jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &self.validation)
                .map(|data| data.claims)
                .map_err(|err| {
                    let (code, message) = match err.kind() {
                        ErrorKind::ExpiredSignature => (ErrorCode::TokenExpired, "token expired"),
                        ErrorKind::ImmatureSignature => {
                            (ErrorCode::TokenNotYetValid, "token not valid yet (nbf)")
                        }
                        // A claim of the wrong type (`"exp": "9999999999"`) does not count as present.
                        ErrorKind::InvalidClaimFormat(_) | ErrorKind::MissingRequiredClaim(_) => (
                            ErrorCode::InvalidClaim,
                            "a token claim is missing or has the wrong type",
                        ),
                        ErrorKind::InvalidAudience => {
                            (ErrorCode::InvalidAudience, "token for another audience")
                        }
                        ErrorKind::InvalidIssuer => {
                            (ErrorCode::InvalidIssuer, "token from another issuer")
                        }
                        ErrorKind::InvalidSignature => {
                            (ErrorCode::InvalidSignature, "bad token signature")
                        }
                        ErrorKind::InvalidAlgorithm => (
                            ErrorCode::InvalidAlgorithm,
                            "only HS256 tokens are accepted",
                        ),
                        _ => (ErrorCode::InvalidToken, "malformed token"),
                    };
                    ApiError::unauthorized(code, message)
                })?;
        serde_json::from_value(claims).map_err(|_| {
            ApiError::unauthorized(
                ErrorCode::InvalidClaim,
                "a token claim is missing or has the wrong type",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(&SigningKey::from_secret(&[7; 32]).unwrap(), 60).unwrap()
    }

    fn code(err: ApiError) -> String {
        err.code().to_string()
    }

    #[test]
    fn issued_tokens_verify() {
        let svc = service();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = svc
            .verify(&svc.issue("u1", "phone", 3, now).unwrap())
            .unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.dev.as_str(), claims.sess),
            ("u1", "phone", 3)
        );
        assert_eq!(claims.exp, now + 60);
        assert_eq!((claims.iss.as_str(), claims.nbf), (ISSUER, now));
    }

    #[test]
    fn successors_are_fixed_per_token_and_key() {
        let svc = service();
        let first = svc.successor_refresh_token("r1").unwrap();
        assert_eq!(first, svc.successor_refresh_token("r1").unwrap());
        assert_eq!(first.len(), 64);
        assert_ne!(first, svc.successor_refresh_token("r2").unwrap());
        let other = TokenService::new(&SigningKey::from_secret(&[8; 32]).unwrap(), 60).unwrap();
        assert_ne!(first, other.successor_refresh_token("r1").unwrap());
    }

    #[test]
    fn a_token_from_the_future_is_refused_until_its_nbf() {
        let svc = service();
        let later = jsonwebtoken::get_current_timestamp() + 3_600;
        let token = svc.issue("u1", "p", 1, later).unwrap();
        assert_eq!(code(svc.verify(&token).unwrap_err()), "token_not_yet_valid");
    }

    #[test]
    fn expired_and_foreign_key_tokens_are_refused() {
        let svc = service();
        let old = jsonwebtoken::get_current_timestamp() - 3_600;
        assert_eq!(
            code(
                svc.verify(&svc.issue("u1", "p", 1, old).unwrap())
                    .unwrap_err()
            ),
            "token_expired"
        );
        let other = TokenService::new(&SigningKey::from_secret(&[8; 32]).unwrap(), 60).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        assert_eq!(
            code(
                svc.verify(&other.issue("u1", "p", 1, now).unwrap())
                    .unwrap_err()
            ),
            "unknown_key"
        );
        assert_eq!(
            code(svc.verify("not.a.token").unwrap_err()),
            "invalid_token"
        );
    }
}
