//! Administration of accounts (admin only): create, read, update (display name, role with its
//! level and jurisdiction, active flag), deactivate, reset password, and list devices.
//!
//! Deactivating an account ends every session of it, as a password reset does: its devices fail
//! on their next request, and reactivating the account later revives none of their old tokens —
//! the user's phones sign in again (keeping their device, actor and unsent work).
//!
//! Every change is written to the administrative audit (`crate::admin::audit`) with the record
//! before and after.

use actix_web::{get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::model::{Role, User};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{self, check_password};
use crate::admin::{admin_writes, audit};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};
use crate::storage::{DeviceRecord, Store, UserRecord};

/// A user as administrators see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = Object)]
    pub user: User,
    /// Whether the account can log in (chiefs on record only have no password).
    pub has_password: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<UserRecord> for UserView {
    fn from(r: UserRecord) -> Self {
        Self {
            has_password: r.password_hash.is_some(),
            user: r.user,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateUser {
    /// 3-64 letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{3,64}$")]
    pub username: String,
    pub display_name: String,
    /// At least 8 characters.
    #[schema(min_length = 8)]
    pub password: String,
    /// `{"kind": "chief", "system", "level", "jurisdiction": {"division", "assets"}}`,
    /// `{"kind": "supervisor", "system", "division"}`, `{"kind": "handler", "department"}` or
    /// `{"kind": "admin"}`.
    pub role: Role,
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResetPassword {
    /// At least 8 characters.
    #[schema(min_length = 8)]
    pub password: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeviceFilter {
    /// Only this user's devices.
    pub user_id: Option<String>,
}

/// A role must name existing places: a chief's division (at the chief's level) and assets of the
/// chief's system; a supervisor's division.
fn check_role(store: &dyn Store, role: &Role) -> Result<(), ApiError> {
    let division_exists = |code| -> Result<(), ApiError> {
        match store.get_division(code)? {
            Some(_) => Ok(()),
            None => Err(ApiError::BadRequest(format!("unknown division {code}"))),
        }
    };
    match role {
        Role::Chief {
            system,
            level,
            jurisdiction,
        } => {
            division_exists(&jurisdiction.division)?;
            if jurisdiction.division.level() != *level {
                return Err(ApiError::BadRequest(format!(
                    "a {} chief's division must be a {0}, {} is a {}",
                    level.as_str(),
                    jurisdiction.division,
                    jurisdiction.division.level().as_str()
                )));
            }
            for id in &jurisdiction.assets {
                match store.get_asset(id)? {
                    Some(asset) if asset.system == *system => {}
                    Some(_) => {
                        return Err(ApiError::BadRequest(format!(
                            "asset {id} is not a {system} asset"
                        )))
                    }
                    None => return Err(ApiError::BadRequest(format!("unknown asset {id}"))),
                }
            }
            Ok(())
        }
        Role::Supervisor { division, .. } => division_exists(division),
        Role::Handler { department } if department.trim().is_empty() => {
            Err(ApiError::BadRequest("a handler needs a department".into()))
        }
        Role::Handler { .. } | Role::Admin => Ok(()),
    }
}

/// Revokes every live device session of the user; how many there were.
pub(crate) fn end_sessions(
    store: &dyn Store,
    user_id: &str,
    now_ms: i64,
) -> Result<usize, ApiError> {
    let mut ended = 0;
    for device in store.list_devices()? {
        if device.user_id == user_id && device.revoked_at_ms.is_none() {
            store.revoke_device(&device.user_id, &device.device_id, now_ms)?;
            ended += 1;
        }
    }
    Ok(ended)
}

fn load(store: &dyn Store, id: &str) -> Result<UserRecord, ApiError> {
    store
        .get_user(id)?
        .ok_or_else(|| ApiError::NotFound(format!("user {id}")))
}

/// All users.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Vec<UserView>>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    let users = web::block(move || store.list_users()).await??;
    Ok(web::Json(users.into_iter().map(UserView::from).collect()))
}

/// Creates an account with a password.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let request = body.into_inner();
    // Hashing the password runs on the password threads, like every argon2 call.
    let pool = state.clone();
    let view = pool
        .password_pool
        .run(move || {
            check_role(state.store.as_ref(), &request.role)?;
            let record = accounts::new_user(
                &state.passwords,
                request.username.trim(),
                request.display_name.trim(),
                request.role,
                &request.password,
                now_ms(),
            )?;
            state.store.create_user(&record)?;
            audit::record(
                state.store.as_ref(),
                &caller,
                "user_create",
                &record.user.display_name,
                None,
                audit::json(&record.user),
            )?;
            tracing::info!(by = %caller.user.id, user = %record.user.id, "user created");
            Ok::<_, ApiError>(UserView::from(record))
        })?
        .await??;
    Ok(HttpResponse::Created().json(view))
}

/// One user.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/admin/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<UserView>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    let record = web::block(move || load(store.as_ref(), &id)).await??;
    Ok(web::Json(record.into()))
}

/// Changes display name, role (level and jurisdiction included) or active flag.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[patch("/admin/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<UpdateUser>,
) -> Result<web::Json<UserView>, ApiError> {
    apply_update(state, caller, id.into_inner(), body.into_inner()).await
}

async fn apply_update(
    state: web::Data<AppState>,
    caller: Caller,
    id: String,
    change: UpdateUser,
) -> Result<web::Json<UserView>, ApiError> {
    caller.require_admin()?;
    let demotes = change.role.as_ref().is_some_and(|r| *r != Role::Admin);
    if id == caller.user.id && (change.active == Some(false) || demotes) {
        return Err(ApiError::Conflict(
            "administrators cannot deactivate or demote themselves".into(),
        ));
    }
    let store = state.store.clone();
    let record = web::block(move || {
        let _writes = admin_writes(store.as_ref())?;
        let mut record = load(store.as_ref(), &id)?;
        let before = record.user.clone();
        if let Some(name) = change.display_name {
            record.user.display_name = name.trim().to_owned();
        }
        if let Some(role) = change.role {
            check_role(store.as_ref(), &role)?;
            record.user.role = role;
        }
        if let Some(active) = change.active {
            record.user.active = active;
        }
        record.updated_at_ms = now_ms();
        store.update_user(&record)?;
        audit::record(
            store.as_ref(),
            &caller,
            "user_update",
            &record.user.display_name,
            audit::json(&before),
            audit::json(&record.user),
        )?;
        // Stored inactive first, so no device can refresh in between.
        let ended = if record.user.active {
            0
        } else {
            end_sessions(store.as_ref(), &record.user.id, now_ms())?
        };
        tracing::info!(by = %caller.user.id, user = %record.user.id, sessions_ended = ended, "user updated");
        Ok::<_, ApiError>(record)
    })
    .await??;
    Ok(web::Json(record.into()))
}

/// Deactivates an account and ends every session of it; its devices stop working at once.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/users/{id}/deactivate")]
pub async fn deactivate_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<UserView>, ApiError> {
    let change = UpdateUser {
        active: Some(false),
        ..UpdateUser::default()
    };
    apply_update(state, caller, id.into_inner(), change).await
}

/// Sets a new password (at least 8 characters) and ends every session of the account, so
/// whoever knew the old password is signed out; the user's phones log in again and keep their
/// device, actor and unsent work.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)), request_body = ResetPassword,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/admin/users/{id}/password")]
pub async fn reset_password(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let password = body.into_inner().password;
    check_password(&password)?;
    let pool = state.clone();
    pool.password_pool.run(move || {
        let mut record = load(state.store.as_ref(), &id)?;
        let hash = state
            .passwords
            .hash(&password)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        record.password_hash = Some(hash);
        record.updated_at_ms = now_ms();
        state.store.update_user(&record)?;
        let ended = end_sessions(state.store.as_ref(), &record.user.id, now_ms())?;
        audit::record(
            state.store.as_ref(),
            &caller,
            "password_reset",
            &record.user.display_name,
            None,
            None,
        )?;
        tracing::info!(by = %caller.user.id, user = %record.user.id, sessions_ended = ended, "password reset");
        Ok::<_, ApiError>(())
    })?
    .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// Device bindings (user, device, actor id, session, revocation).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(DeviceFilter),
    responses((status = 200, body = Vec<Object>), (status = 403, body = ErrorBody)))]
#[get("/admin/devices")]
pub async fn list_devices(
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<DeviceFilter>,
) -> Result<web::Json<Vec<DeviceRecord>>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    let user_id = filter.into_inner().user_id;
    let devices = web::block(move || store.list_devices()).await??;
    Ok(web::Json(
        devices
            .into_iter()
            .filter(|d| user_id.as_ref().is_none_or(|u| *u == d.user_id))
            .collect(),
    ))
}
