//! The people of a district as administrators keep them (admin only): their posts, one-time
//! setup codes, devices to revoke, the people list of the desk, and the audit of administrative
//! changes. Importing them from files is `admin_import`.

use std::collections::HashMap;

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_core::import::roster::{Chief, Places};
use sync_core::model::User;
use utoipa::{IntoParams, ToSchema};

use crate::admin::{admin_writes, audit, post_key, posts, setup};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};
use crate::storage::AdminBatch;

use super::admin_import::SetupCodeView;

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Newest entries to list (default 200, at most 2000).
    #[serde(default, deserialize_with = "crate::api::saturating_count")]
    pub limit: Option<usize>,
}

/// Administrative changes, newest first: who, when, what, before and after.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Vec<audit::AuditEntry>), (status = 403, body = ErrorBody)))]
#[get("/admin/audit")]
pub async fn audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<Vec<audit::AuditEntry>>, ApiError> {
    caller.require_admin()?;
    let limit = query.limit.unwrap_or(200).min(2000);
    let store = state.store.clone();
    Ok(web::Json(
        web::block(move || audit::newest(store.as_ref(), limit)).await??,
    ))
}

/// Every person's post (职务), by user id.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = HashMap<String, String>), (status = 403, body = ErrorBody)))]
#[get("/admin/posts")]
pub async fn list_posts(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<HashMap<String, String>>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    Ok(web::Json(web::block(move || posts(store.as_ref())).await??))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PostEdit {
    pub post: String,
}

/// Sets a person's post (职务).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)), request_body = PostEdit,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/admin/users/{id}/post")]
pub async fn set_post(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<PostEdit>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let (id, post) = (id.into_inner(), body.into_inner().post.trim().to_owned());
    web::block(move || {
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let record = store
            .get_user(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("user {id}")))?;
        let before = store
            .get_meta(&post_key(&id))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let batch = AdminBatch {
            meta: vec![
                (post_key(&id), post.clone().into_bytes()),
                audit::entry(
                    &caller,
                    now_ms(),
                    "post_change",
                    &record.user.display_name,
                    before.map(Value::String),
                    Some(Value::String(post)),
                )?,
            ],
            ..AdminBatch::default()
        };
        store.apply_admin_batch(&batch)?;
        Ok::<_, ApiError>(())
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// Issues a new one-time setup code for a person (a lost code, or someone created before codes
/// existed). The earlier code stops working. The person's password, if any, stays until the
/// code is used.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = SetupCodeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/admin/users/{id}/setup-code")]
pub async fn new_setup_code(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<SetupCodeView>, ApiError> {
    caller.require_admin()?;
    let id = id.into_inner();
    let view = web::block(move || {
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let record = store
            .get_user(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("user {id}")))?;
        let now = now_ms();
        let (code, stored) = setup::issue(&id, now)?;
        let batch = AdminBatch {
            meta: vec![
                (setup::key(&id), setup::encode(&stored)?),
                audit::entry(
                    &caller,
                    now,
                    "setup_code_issued",
                    &record.user.display_name,
                    None,
                    None,
                )?,
            ],
            ..AdminBatch::default()
        };
        store.apply_admin_batch(&batch)?;
        Ok::<_, ApiError>(SetupCodeView {
            user_id: id,
            username: record.user.username,
            display_name: record.user.display_name,
            code,
            expires_at_ms: stored.expires_at_ms,
        })
    })
    .await??;
    Ok(web::Json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceRevoke {
    pub user_id: String,
    pub device_id: String,
}

/// Revokes one (user, device) binding: the phone's tokens stop working at once; its user signs
/// in again to use it.
#[utoipa::path(tag = "admin", operation_id = "admin_revoke_device", security(("bearer" = [])), request_body = DeviceRevoke,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/admin/devices/revoke")]
pub async fn revoke_device(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<DeviceRevoke>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let DeviceRevoke { user_id, device_id } = body.into_inner();
    web::block(move || {
        let store = state.store.as_ref();
        let name = store
            .get_user(&user_id)?
            .map_or_else(|| user_id.clone(), |r| r.user.display_name);
        let revoked = store
            .revoke_device(&user_id, &device_id, now_ms())?
            .ok_or_else(|| ApiError::NotFound(format!("device {device_id} of {user_id}")))?;
        audit::record(
            store,
            &caller,
            "device_revoke",
            &name,
            None,
            Some(serde_json::json!({"device_id": revoked.device_id})),
        )?;
        Ok::<_, ApiError>(())
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// The people as the desk lists them (for chiefs, the roster row in names).
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    #[schema(value_type = Object)]
    pub user: User,
    pub post: String,
    pub has_password: bool,
    /// A setup code is live (issued, unused, not expired).
    pub setup_pending: bool,
    #[schema(value_type = Option<Object>)]
    pub chief: Option<Chief>,
}

/// Everyone, with posts, sign-in state and chiefs' jurisdictions in names.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<PersonView>), (status = 403, body = ErrorBody)))]
#[get("/admin/people")]
pub async fn list_people(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Vec<PersonView>>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    let people = web::block(move || {
        let store = store.as_ref();
        let (divisions, assets) = (store.list_divisions()?, store.list_assets()?);
        let places = Places::new(&divisions, &assets);
        let posts = posts(store)?;
        let codes: HashMap<String, setup::StoredCode> = store
            .list_meta("setup.code/")?
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    k.trim_start_matches("setup.code/").to_owned(),
                    serde_json::from_slice(&v).ok()?,
                ))
            })
            .collect();
        let now = now_ms();
        Ok::<_, ApiError>(
            store
                .list_users()?
                .into_iter()
                .map(|r| {
                    let post = posts.get(&r.user.id).cloned().unwrap_or_default();
                    let chief = places.row_of(&r.user, &post).map(|row| Chief {
                        username: row.phone,
                        display_name: row.name,
                        post: row.post,
                        role: r.user.role.clone(),
                        division_name: row.division,
                        asset_names: sync_core::import::split_names(&row.assets),
                    });
                    let setup_pending = codes
                        .get(&r.user.id)
                        .is_some_and(|c| c.used_at_ms.is_none() && now < c.expires_at_ms);
                    PersonView {
                        has_password: r.password_hash.is_some(),
                        setup_pending,
                        post,
                        chief,
                        user: r.user,
                    }
                })
                .collect::<Vec<_>>(),
        )
    })
    .await??;
    Ok(web::Json(people))
}
