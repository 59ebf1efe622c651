//! Login, refresh, the caller's own record, and device revocation.
//!
//! A supervisor may revoke the devices of users whose division lies inside the supervisor's
//! division; an admin may revoke any device. Revocation ends every token of that device session
//! at once (the caller extractor checks the session on each request).

use actix_web::{get, post, web};
use serde::{Deserialize, Serialize};
use sync_core::model::{DivisionCode, Role, User};
use utoipa::ToSchema;

use crate::auth::session::{self, LoginRequest, RefreshRequest, TokenGrant};
use crate::auth::Caller;
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
    body: web::Json<LoginRequest>,
) -> Result<web::Json<TokenGrant>, ApiError> {
    let request = body.into_inner();
    let grant = web::block(move || session::login(&state, &request, now_ms())).await??;
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

/// The division a user answers for, if any.
pub fn division_of(role: &Role) -> Option<&DivisionCode> {
    match role {
        Role::Chief { jurisdiction, .. } => Some(&jurisdiction.division),
        Role::Supervisor { division, .. } => Some(division),
        Role::Handler { .. } | Role::Admin => None,
    }
}

fn may_revoke(caller: &User, owner: &User) -> bool {
    match &caller.role {
        Role::Admin => true,
        Role::Supervisor { division, .. } => {
            division_of(&owner.role).is_some_and(|d| division.contains(d))
        }
        _ => false,
    }
}

/// Ends every token of this device id (for each user bound to it that the caller oversees).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "the device id the app logged in with")),
    responses(
        (status = 200, body = Revoked),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not an admin or the supervisor of the device's user"),
        (status = 404, body = ErrorBody, description = "no such device"),
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
        let bindings: Vec<_> = store
            .list_devices()?
            .into_iter()
            .filter(|d| d.device_id == device_id)
            .collect();
        if bindings.is_empty() {
            return Err(ApiError::NotFound(format!("device {device_id}")));
        }
        let now = now_ms();
        let mut revoked = Vec::new();
        for binding in bindings {
            let Some(owner) = store.get_user(&binding.user_id)? else {
                continue;
            };
            if may_revoke(&caller.user, &owner.user) {
                store.revoke_device(&binding.user_id, &binding.device_id, now)?;
                revoked.push(RevokedDevice {
                    user_id: binding.user_id,
                    device_id: binding.device_id,
                });
            }
        }
        if revoked.is_empty() {
            return Err(ApiError::Forbidden(
                "only an admin or the user's supervisor may revoke this device".into(),
            ));
        }
        tracing::info!(by = %caller.user.id, device = %device_id, count = revoked.len(), "device revoked");
        Ok(revoked)
    })
    .await??;
    Ok(web::Json(Revoked { revoked }))
}
