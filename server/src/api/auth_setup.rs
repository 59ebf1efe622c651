//! First sign-in with a one-time setup code: someone the office imported (and so has no
//! password) sends their username, the code the office handed them and the password they
//! choose; the code is spent, the password stored, every earlier session of the account ended
//! (a code issued to someone who had a password is a reset), and the device signed in as by a
//! login.
//!
//! Wrong codes are throttled by the same limiter as wrong passwords (per username, per address),
//! and a wrong, spent, expired or never-issued code and an unknown username all get the same
//! answer, so the endpoint reveals nothing about who exists.

use sync_core::api_types::ErrorCode;

use actix_web::{post, web};

use crate::accounts::check_password;
use crate::admin::{admin_writes, setup};
use crate::auth::rate_limit::Attempt;
use crate::auth::session::{self, TokenGrant};
use crate::auth::ClientIp;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};
use crate::storage::AdminBatch;

/// The first sign-in's body, defined once for the server and the phone library.
pub use sync_core::api_types::SetupRequest;

fn invalid() -> ApiError {
    ApiError::unauthorized(
        ErrorCode::InvalidSetupCode,
        "wrong username or setup code, or the code was used or has expired",
    )
}

/// Sets the first password with a one-time setup code and signs the device in.
#[utoipa::path(
    tag = "auth",
    request_body = SetupRequest,
    responses(
        (status = 200, body = TokenGrant),
        (status = 400, body = ErrorBody, description = "password too short or device id malformed"),
        (status = 401, body = ErrorBody, description = "wrong, used or expired code, or inactive account"),
        (status = 429, body = ErrorBody, description = "too many failed attempts; see Retry-After"),
    )
)]
#[post("/auth/setup")]
pub async fn setup_password(
    state: web::Data<AppState>,
    ClientIp(address): ClientIp,
    body: web::Json<SetupRequest>,
) -> Result<web::Json<TokenGrant>, ApiError> {
    let SetupRequest {
        username,
        code,
        password,
        device_id,
    } = body.into_inner();
    session::check_device_id(&device_id)?;
    check_password(&password)?;
    let username = username.trim().to_owned();
    let attempt = Attempt {
        address,
        username: &username,
        known_device: false,
    };
    let limiter = state.clone();
    let asking = username.clone();
    let throttled = web::block(move || {
        let attempt = Attempt {
            address,
            username: &asking,
            known_device: false,
        };
        limiter.login_limiter.check(&attempt, now_ms())
    })
    .await??;
    if let Err(retry) = throttled {
        return Err(ApiError::RateLimited {
            retry_after_secs: retry.as_secs().max(1),
        });
    }
    let checker = state.clone();
    let lookup = username.clone();
    let record = web::block(move || -> Result<_, ApiError> {
        let Some(record) = checker.store.find_user_by_username(&lookup)? else {
            return Ok(None);
        };
        let stored = setup::load(checker.store.as_ref(), &record.user.id)?;
        Ok(setup::accepts(stored.as_ref(), &record.user.id, &code, now_ms()).then_some(record))
    })
    .await??;
    let Some(mut record) = record else {
        session::record_attempt(&state, &attempt, false).await?;
        return Err(invalid());
    };
    session::record_attempt(&state, &attempt, true).await?;
    if !record.user.active {
        return Err(ApiError::unauthorized(
            ErrorCode::UserInactive,
            "account is not active",
        ));
    }
    let hasher = state.clone();
    let hash = state
        .password_pool
        .run(move || hasher.passwords.hash(&password))?
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let grant = web::block(move || {
        let now = now_ms();
        {
            // Spent and stored under the admin lock, so two uses of one code cannot both pass.
            let _writes = admin_writes(state.store.as_ref())?;
            let mut stored =
                setup::load(state.store.as_ref(), &record.user.id)?.ok_or_else(invalid)?;
            if stored.used_at_ms.is_some() || now >= stored.expires_at_ms {
                return Err(invalid());
            }
            stored.used_at_ms = Some(now);
            record.password_hash = Some(hash);
            record.updated_at_ms = now;
            state.store.apply_admin_batch(&AdminBatch {
                changed_users: vec![record.clone()],
                meta: vec![(setup::key(&record.user.id), setup::encode(&stored)?)],
                ..AdminBatch::default()
            })?;
        }
        // Whoever signed in before the code was used (a code issued as a reset) is signed out.
        for device in state.store.list_devices()? {
            if device.user_id == record.user.id && device.revoked_at_ms.is_none() {
                state
                    .store
                    .revoke_device(&device.user_id, &device.device_id, now)?;
            }
        }
        tracing::info!(user = %record.user.id, "first password set with a setup code");
        session::start(&state, record.user, &device_id, now)
    })
    .await??;
    Ok(web::Json(grant))
}
