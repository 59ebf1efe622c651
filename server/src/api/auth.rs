//! Login, refresh, logout, the caller's own record, and device revocation.
//!
//! Whoever oversees a user (`sync_core::authz::oversees`: the user, a supervisor of the user's
//! system over the user's division, an admin) may revoke that user's devices. Revocation ends
//! every token of that device session at once (the caller extractor checks the session on each
//! request). A device id the caller may not revoke gets the same answer as one that does not
//! exist, so the endpoint cannot be used to find out which device ids are in use.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::authz::oversees;
use sync_core::model::User;
use utoipa::ToSchema;

use crate::auth::session::{self, LoginRequest, RefreshRequest, TokenGrant};
use crate::auth::{Caller, ClientIp};
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

/// The caller as the device sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    #[schema(value_type = Object)]
    pub user: User,
    pub device_id: String,
    pub actor_id: String,
}

/// A (user, device) binding that was revoked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokedDevice {
    pub user_id: String,
    pub device_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    pub revoked: Vec<RevokedDevice>,
}

/// Username, password and device id in; tokens, the user and the device's actor id out.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenGrant),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "wrong username or password, or inactive account"),
        (status = 429, body = ErrorBody, description = "too many failed logins; see Retry-After"),
    )
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    ClientIp(address): ClientIp,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<TokenGrant>, ApiError> {
    let grant = session::login(state, body.into_inner(), address).await?;
    Ok(web::Json(grant))
}

/// Exchanges a refresh token for a new pair. A refresh token works once; presenting it again
/// revokes the device.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenGrant), (status = 401, body = ErrorBody))
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<web::Json<TokenGrant>, ApiError> {
    let token = body.into_inner().refresh_token;
    let grant = web::block(move || session::refresh(&state, &token, now_ms())).await??;
    Ok(web::Json(grant))
}

/// Signs a device out with its refresh token (the access token may have expired while the
/// desk sat idle): the device's session ends, so neither its access token nor its refresh token
/// works any more. Always 204, whether or not the token was still live.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204), (status = 400, body = ErrorBody))
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().refresh_token;
    web::block(move || session::logout(&state, &token, now_ms())).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// The authenticated user, device and actor id.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody))
)]
#[get("/me")]
pub async fn me(caller: Caller) -> web::Json<Me> {
    web::Json(Me {
        user: caller.user,
        device_id: caller.device.device_id,
        actor_id: caller.device.actor_id,
    })
}

/// Ends every token of this device id (for each user bound to it that the caller oversees).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "the device id the app logged in with")),
    responses(
        (status = 200, body = Revoked),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no device with this id that the caller oversees"),
    )
)]
#[post("/devices/{device_id}/revoke")]
pub async fn revoke_device(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<web::Json<Revoked>, ApiError> {
    let device_id = path.into_inner();
    let store = state.store.clone();
    let revoked = web::block(move || {
        let now = now_ms();
        let mut revoked = Vec::new();
        for binding in store.list_devices()? {
            if binding.device_id != device_id {
                continue;
            }
            let Some(owner) = store.get_user(&binding.user_id)? else {
                continue;
            };
            if oversees(&caller.user, &owner.user) {
                store.revoke_device(&binding.user_id, &binding.device_id, now)?;
                revoked.push(RevokedDevice {
                    user_id: binding.user_id,
                    device_id: binding.device_id,
                });
            }
        }
        // Unknown and not overseen answer alike: whether a device id exists is nobody's
        // business but its overseers'.
        if revoked.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no device {device_id} that you oversee"
            )));
        }
        tracing::info!(by = %caller.user.id, device = %device_id, count = revoked.len(), "device revoked");
        Ok(revoked)
    })
    .await??;
    Ok(web::Json(Revoked { revoked }))
}
