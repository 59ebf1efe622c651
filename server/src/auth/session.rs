//! Login and refresh: checking credentials, binding the device, and granting a token pair.
//!
//! A sign-in looks the account up on a blocking thread, is throttled (`rate_limit`: by client
//! address and username, and for devices the account does not know also by address and by
//! username alone), and has its password checked on the password threads
//! (`password::PasswordPool`), never on the blocking threads every signed-in request needs.
//!
//! A refresh token is single-use: a successful refresh marks it used and grants a new pair in
//! the same device session. Its successor is derived from it (`TokenService::
//! successor_refresh_token`), so an exchange retried shortly after — the phone's answer was
//! lost, or it sent the same token twice at once — answers the very same successor, and a
//! token never has two. Presenting a used token whose successor was used already means it was
//! copied, so the whole device session is revoked. The store decides an exchange in one step
//! with the token's and its successor's records locked (`Store::exchange_refresh_token`), so
//! two copies of a token arriving together, at one server or at two on the same database, are
//! decided one after the other.

use std::net::IpAddr;

use actix_web::web;
use sync_core::model::User;

use super::password::PoolBusy;
use super::rate_limit::Attempt;
use super::refresh::{hash_refresh_token, new_actor_id, new_refresh_token};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::storage::{DeviceRecord, Exchanged, RefreshExchange, RefreshRecord, RefreshUse};

/// Longest accepted device id; device ids are chosen by the app (e.g. a UUID).
const MAX_DEVICE_ID_CHARS: usize = 128;

pub use sync_core::api_types::{LoginRequest, RefreshRequest, TokenGrant};

fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_DEVICE_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl From<PoolBusy> for ApiError {
    fn from(_: PoolBusy) -> Self {
        ApiError::Overloaded {
            message: "too many sign-ins at once; try again in a moment".into(),
            retry_after_secs: 1,
        }
    }
}

/// 400 unless `id` is a well-formed device id.
pub fn check_device_id(id: &str) -> Result<(), ApiError> {
    if valid_device_id(id) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "device_id must be 1-{MAX_DEVICE_ID_CHARS} characters of letters, digits, '-', '_', '.', ':'"
        )))
    }
}

/// Binds the device to the user (a new session) and grants a token pair, as a login does once
/// the credentials are checked.
pub fn start(
    state: &AppState,
    user: User,
    device_id: &str,
    now_ms: i64,
) -> Result<TokenGrant, ApiError> {
    let device = state
        .store
        .start_session(&user.id, device_id, &new_actor_id()?, now_ms)?;
    let (refresh_token, _) = new_refresh_token()?;
    grant(state, user, &device, now_ms, refresh_token)
}

/// Checks the password (throttled, see the module), binds the device and grants a token pair.
/// `address` is the client's network address.
pub async fn login(
    state: web::Data<AppState>,
    request: LoginRequest,
    address: IpAddr,
) -> Result<TokenGrant, ApiError> {
    if !valid_device_id(&request.device_id) {
        return Err(ApiError::BadRequest(format!(
            "device_id must be 1-{MAX_DEVICE_ID_CHARS} characters of letters, digits, '-', '_', '.', ':'"
        )));
    }
    let LoginRequest {
        username,
        password,
        device_id,
    } = request;
    let username = username.trim().to_owned();
    let (record, known_device) = {
        let (state, username, device_id) = (state.clone(), username.clone(), device_id.clone());
        web::block(move || -> Result<_, ApiError> {
            let record = state.store.find_user_by_username(&username)?;
            let known = match &record {
                Some(r) => state
                    .store
                    .get_device(&r.user.id, &device_id)?
                    .is_some_and(|d| d.revoked_at_ms.is_none()),
                None => false,
            };
            Ok((record, known))
        })
        .await??
    };
    let attempt = Attempt {
        address,
        username: &username,
        known_device,
    };
    let limiter = state.clone();
    let asking = username.clone();
    let throttled = web::block(move || {
        let attempt = Attempt {
            address,
            username: &asking,
            known_device,
        };
        limiter
            .login_limiter
            .check(&attempt, crate::state::now_ms())
    })
    .await??;
    if let Err(retry) = throttled {
        return Err(ApiError::RateLimited {
            retry_after_secs: retry.as_secs().max(1),
        });
    }
    // An unknown username is checked against a dummy hash, so it takes as long.
    let hash = record.as_ref().and_then(|r| r.password_hash.clone());
    let checker = state.clone();
    let verified = state
        .password_pool
        .run(move || checker.passwords.verify(&password, hash.as_deref()))?
        .await?;
    let record = match record {
        Some(r) if verified => r,
        _ => {
            record_attempt(&state, &attempt, false).await?;
            return Err(ApiError::unauthorized(
                ErrorCode::InvalidCredentials,
                "wrong username or password",
            ));
        }
    };
    record_attempt(&state, &attempt, true).await?;
    if !record.user.active {
        return Err(ApiError::unauthorized(
            ErrorCode::UserInactive,
            "account is not active",
        ));
    }
    web::block(move || {
        let now_ms = crate::state::now_ms();
        let device =
            state
                .store
                .start_session(&record.user.id, &device_id, &new_actor_id()?, now_ms)?;
        tracing::info!(user = %record.user.id, device = %device.device_id, session = device.session, "login");
        let (refresh_token, _) = new_refresh_token()?;
        grant(&state, record.user, &device, now_ms, refresh_token)
    })
    .await?
}

/// Counts a failed sign-in, or forgives the address's typos for the username after a success
/// (`rate_limit::LoginLimiter`), in the store the servers share.
pub(crate) async fn record_attempt(
    state: &web::Data<AppState>,
    attempt: &Attempt<'_>,
    succeeded: bool,
) -> Result<(), ApiError> {
    let limiter = state.clone();
    let (address, username, known_device) = (
        attempt.address,
        attempt.username.to_owned(),
        attempt.known_device,
    );
    web::block(move || {
        let attempt = Attempt {
            address,
            username: &username,
            known_device,
        };
        if succeeded {
            limiter.login_limiter.record_success(&attempt)
        } else {
            limiter
                .login_limiter
                .record_failure(&attempt, crate::state::now_ms())
        }
    })
    .await??;
    Ok(())
}

/// How long after its exchange a refresh token may be presented again as a retry: a phone whose
/// answer was lost (signal gone, server killed between commit and response) sends the same
/// token again and must not be signed out for it.
pub const REFRESH_RETRY_MS: i64 = 60_000;

/// Exchanges a refresh token for a new pair; reuse of a spent token revokes the device, except
/// a retry shortly after the exchange, which gets the same successor again.
pub fn refresh(state: &AppState, token: &str, now_ms: i64) -> Result<TokenGrant, ApiError> {
    let spent = |message: &str| ApiError::unauthorized(ErrorCode::InvalidRefreshToken, message);
    let successor = state.tokens.successor_refresh_token(token)?;
    let successor_hash = hash_refresh_token(&successor);
    let refresh_ttl_ms =
        i64::try_from(state.refresh_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let exchange = RefreshExchange {
        token_hash: &hash_refresh_token(token),
        successor_hash: &successor_hash,
        successor_expires_ms: now_ms.saturating_add(refresh_ttl_ms),
        retry_ms: REFRESH_RETRY_MS,
        now_ms,
    };
    let record = match state.store.exchange_refresh_token(&exchange)? {
        Exchanged::Unknown => return Err(spent("unknown refresh token")),
        Exchanged::Expired(_) => return Err(spent("refresh token expired")),
        Exchanged::Reused(record) => {
            state
                .store
                .revoke_device(&record.user_id, &record.device_id, now_ms)?;
            tracing::warn!(user = %record.user_id, device = %record.device_id, "refresh token reused; device revoked");
            return Err(ApiError::unauthorized(
                ErrorCode::RefreshTokenReused,
                "refresh token already used; this device has been signed out",
            ));
        }
        Exchanged::Granted(record) => {
            if record.used_at_ms.is_some() {
                tracing::info!(user = %record.user_id, device = %record.device_id, "refresh retried");
            }
            record
        }
    };
    let device = state
        .store
        .get_device(&record.user_id, &record.device_id)?
        .filter(|d| d.accepts(record.session))
        .ok_or_else(|| {
            ApiError::unauthorized(ErrorCode::DeviceRevoked, "this device's session has ended")
        })?;
    let user = state
        .store
        .get_user(&record.user_id)?
        .filter(|u| u.user.active)
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::UserInactive, "account is not active"))?;
    // The successor is stored already, by the exchange.
    tokens(state, user.user, &device, now_ms, successor)
}

/// Ends the device session `token` belongs to, if it is still that session's (signing out).
pub fn logout(state: &AppState, token: &str, now_ms: i64) -> Result<(), ApiError> {
    let record = match state
        .store
        .consume_refresh_token(&hash_refresh_token(token), now_ms)?
    {
        RefreshUse::Unknown => return Ok(()),
        RefreshUse::Fresh(record) | RefreshUse::Reused(record) => record,
    };
    let current = state
        .store
        .get_device(&record.user_id, &record.device_id)?
        .is_some_and(|d| d.accepts(record.session));
    if current {
        state
            .store
            .revoke_device(&record.user_id, &record.device_id, now_ms)?;
        tracing::info!(user = %record.user_id, device = %record.device_id, "logout");
    }
    Ok(())
}

/// Stores `refresh_token` for the device session and grants it with a new access token.
fn grant(
    state: &AppState,
    user: User,
    device: &DeviceRecord,
    now_ms: i64,
    refresh_token: String,
) -> Result<TokenGrant, ApiError> {
    let refresh_ttl_ms =
        i64::try_from(state.refresh_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    state.store.put_refresh_token(&RefreshRecord {
        token_hash: hash_refresh_token(&refresh_token),
        user_id: user.id.clone(),
        device_id: device.device_id.clone(),
        session: device.session,
        expires_at_ms: now_ms.saturating_add(refresh_ttl_ms),
        used_at_ms: None,
        replaced_by: None,
    })?;
    tokens(state, user, device, now_ms, refresh_token)
}

/// A new access token beside `refresh_token`, which is stored already.
fn tokens(
    state: &AppState,
    user: User,
    device: &DeviceRecord,
    now_ms: i64,
    refresh_token: String,
) -> Result<TokenGrant, ApiError> {
    let now_secs = u64::try_from(now_ms / 1000).unwrap_or(0);
    let access_token = state
        .tokens
        .issue(&user.id, &device.device_id, device.session, now_secs)?;
    Ok(TokenGrant {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.tokens.access_ttl_secs(),
        refresh_token,
        refresh_expires_in: state.refresh_ttl_secs,
        user,
        device_id: device.device_id.clone(),
        actor_id: device.actor_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::valid_device_id;

    #[test]
    fn device_ids_are_restricted() {
        assert!(valid_device_id("0190f3a2-7c1e-7000-8000-000000000001"));
        assert!(valid_device_id("pixel-7:main"));
        assert!(!valid_device_id(""));
        assert!(!valid_device_id("phone 1"));
        assert!(!valid_device_id(&"x".repeat(129)));
    }
}
