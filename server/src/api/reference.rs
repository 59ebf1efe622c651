//! `GET /api/v1/reference`: the reference data a device of the caller needs (scope decided in
//! `crate::reference`), with a strong ETag so devices re-download only after a change.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{get, web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::reference::{for_user, ReferenceData};
use crate::state::AppState;

/// Divisions, assets with geometry, categories, check items and patrol rules for the caller.
#[utoipa::path(
    tag = "reference",
    security(("bearer" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "ETag of the copy the device holds")),
    responses(
        (status = 200, body = ReferenceData, headers(("ETag" = String))),
        (status = 304, description = "the device's copy is current"),
        (status = 401, body = ErrorBody),
    )
)]
#[get("/reference")]
pub async fn get_reference(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let data = web::block(move || for_user(store.as_ref(), &caller.user)).await??;
    let body = serde_json::to_vec(&data).map_err(|e| ApiError::Internal(e.to_string()))?;
    let tag = EntityTag::new_strong(hex::encode(&Sha256::digest(&body)[..16]));
    let unchanged = match req.headers().get(header::IF_NONE_MATCH) {
        Some(_) => match header::Header::parse(&req) {
            Ok(IfNoneMatch::Any) => true,
            Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&tag)),
            Err(_) => false,
        },
        None => false,
    };
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header(header::ETag(tag));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.content_type("application/json").body(body))
}
