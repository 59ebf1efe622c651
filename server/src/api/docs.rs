//! Documents in the caller's scope: the listing a foreign automerge client discovers ids and
//! heads from, a JSON view of one document, and its audit history for supervisors. A document
//! outside the caller's scope is answered exactly like one that does not exist.

use actix_web::{get, web, HttpResponse};
use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use sync_core::doc::{DocKind, DocView};
use sync_core::hub::read::{History, ReadScope};
use sync_core::hub::{AuditEntry, HubError};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::photos::{view_evidence, PhotoCompleteness};
use crate::state::{now_ms, AppState};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `issue` or `patrol`; both when absent.
    #[param(schema_with = crate::api::schema::doc_kind)]
    pub kind: Option<String>,
    /// Continue after this document id (the previous page's `next`).
    pub after: Option<String>,
    /// Page size, at most 500 (default 100).
    #[serde(default, deserialize_with = "crate::api::saturating_count")]
    pub limit: Option<usize>,
    /// `true`: only the documents the caller's phones receive at sync (a chief's own work and
    /// the problems they act on; sync-core `authz::delivered`), not all they may read.
    pub delivered: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocEntry {
    pub id: String,
    /// `issue` or `patrol`.
    pub kind: String,
    /// Hex change hashes of the server's current heads.
    pub heads: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocPage {
    pub docs: Vec<DocEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

fn parse_kind(kind: Option<&str>) -> Result<Option<DocKind>, ApiError> {
    match kind {
        None => Ok(None),
        Some("issue") => Ok(Some(DocKind::Issue)),
        Some("patrol") => Ok(Some(DocKind::Patrol)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "kind must be issue or patrol, not {other}"
        ))),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no document {id} in your scope"))
}

/// Ids, kinds and heads of the documents in the caller's scope (or, with `delivered=true`,
/// of those the caller's phones receive), ordered by id, paged.
#[utoipa::path(
    tag = "documents",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = DocPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
#[get("/docs")]
pub async fn list_docs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let kind = parse_kind(query.kind.as_deref())?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let after = query.after.clone();
    let only_delivered = query.delivered.unwrap_or(false);
    let now = now_ms();
    let store = state.store.clone();
    let hub = state.hub.clone();
    let page = web::block(move || -> Result<DocPage, ApiError> {
        let scope = ReadScope::of(&caller.user);
        let page = if only_delivered {
            scope.delivered_page(store.as_ref(), kind, after.as_deref(), limit, now)?
        } else {
            scope.page(store.as_ref(), kind, after.as_deref(), limit)?
        };
        let mut docs = Vec::with_capacity(page.docs.len());
        // Heads come from the documents as devices receive them: decoded once per save, and
        // read from the store a few dozen at a time.
        for metas in page.docs.chunks(sync_core::hub::DOCS_PER_READ) {
            let ids: Vec<&str> = metas.iter().map(|meta| meta.id.as_str()).collect();
            for (meta, doc) in metas.iter().zip(hub.docs_changes(&ids)?) {
                let Some(doc) = doc? else {
                    continue;
                };
                docs.push(DocEntry {
                    id: meta.id.clone(),
                    kind: meta.kind.as_str().to_owned(),
                    heads: doc
                        .heads()
                        .iter()
                        .map(|h| ChangeHash(*h).to_string())
                        .collect(),
                });
            }
        }
        let next = page.next;
        Ok(DocPage { docs, next })
    })
    .await??;
    Ok(HttpResponse::Ok().json(page))
}

/// A document's view and whether the photos it references have arrived.
#[derive(Debug, Serialize)]
struct DocReply {
    #[serde(flatten)]
    view: DocView,
    photos: PhotoCompleteness,
}

/// The JSON view of one document in the caller's scope: the record, the derived workflow state
/// (issues) or track measures (patrols), the heads, and `photos`: which referenced photos are
/// stored, which are missing, and the evidence doubts about each.
#[utoipa::path(
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "document id")),
    responses(
        (status = 200, description = "DocView: {kind, heads, record, state | track_stats + track, photos: PhotoCompleteness}"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown or outside the caller's scope"),
    )
)]
#[get("/docs/{id}")]
pub async fn get_doc(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let state = state.into_inner();
    let reply = web::block(move || -> Result<DocReply, ApiError> {
        let stored = ReadScope::of(&caller.user)
            .document(state.store.as_ref(), &id, None)?
            .ok_or_else(|| not_found(&id))?;
        let view = DocView::of_bytes(&stored.bytes).map_err(|e| {
            ApiError::from(HubError::Damaged {
                id: id.clone(),
                reason: e.to_string(),
            })
        })?;
        let judged = view_evidence(&state, &caller.user, &view, now_ms());
        let photos = PhotoCompleteness::of(&judged);
        Ok(DocReply { view, photos })
    })
    .await??;
    Ok(HttpResponse::Ok().json(reply))
}

/// Who changed a document, from which device, and when the server received each change.
/// Supervisors and administrators only.
#[utoipa::path(
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "document id")),
    responses(
        (status = 200, body = Vec<AuditRow>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a supervisor or administrator"),
        (status = 404, body = ErrorBody, description = "unknown or outside the caller's scope"),
    )
)]
#[get("/docs/{id}/history")]
pub async fn doc_history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let store = state.store.clone();
    let rows = web::block(move || -> Result<Vec<AuditRow>, ApiError> {
        match ReadScope::of(&caller.user).history(store.as_ref(), &id)? {
            History::Unknown => Err(not_found(&id)),
            History::Withheld => Err(ApiError::Forbidden(
                "document history is shown to supervisors".into(),
            )),
            History::Entries(entries) => Ok(entries.into_iter().map(AuditRow::from).collect()),
        }
    })
    .await??;
    Ok(HttpResponse::Ok().json(rows))
}

/// One accepted change as the audit shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRow {
    /// Hex change hash.
    pub change: String,
    pub user: String,
    /// `user/device` of the sending device.
    pub device: String,
    pub actor: String,
    pub received_at_ms: i64,
}

impl From<AuditEntry> for AuditRow {
    fn from(entry: AuditEntry) -> Self {
        Self {
            change: entry.change,
            user: entry.user,
            device: entry.device,
            actor: entry.actor,
            received_at_ms: entry.received_at_ms,
        }
    }
}
