//! Sync endpoints: `POST /sync` (ChiefSync's batch protocol) and
//! `POST /docs/{id}/automerge-sync` (one standard automerge sync message). Both hand the
//! decision to sync-core's hub; this file only reads bodies, runs the hub off the async workers
//! and writes the answer.

use actix_web::http::header::ContentType;
use actix_web::{post, web, HttpRequest, HttpResponse};
use sync_core::hub::{AutomergeSyncOutcome, Caller as HubCaller};
use sync_core::model::User;
use sync_core::protocol::{
    OverviewUpdate, SyncRequest, ANSWER_BYTES_HEADER, MAX_MESSAGE_BYTES, OVERVIEW_HEADER,
};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

/// Largest sync body read: the protocol's own limit.
pub const SYNC_LIMIT_BYTES: usize = MAX_MESSAGE_BYTES;

/// The hub's view of the caller. Devices are keyed by user and device id together, so two
/// people sharing a phone never share sync records.
pub fn hub_caller(caller: &Caller) -> Result<HubCaller, ApiError> {
    let actor = sync_core::doc::parse_actor(&caller.device.actor_id)
        .map_err(|e| ApiError::Internal(format!("stored actor id: {e}")))?;
    Ok(HubCaller {
        user: caller.user.clone(),
        device: caller.device.ledger_key(),
        actor,
        bound_at_ms: Some(caller.device.created_at_ms),
    })
}

/// The caller with its binding moved back by the deployment's allowance for work recorded before
/// its phones were signed in (`settings::DeviceTimes::binding_grace_ms`, 0 in production): the
/// same allowance the patrols' bounds take (`derived::device_clock`), so one rule bounds every
/// time a phone supplies.
fn with_binding_grace(state: &AppState, mut who: HubCaller) -> Result<HubCaller, ApiError> {
    let grace = crate::settings::device_times(state.store.as_ref())?
        .binding_grace_ms
        .max(0);
    who.bound_at_ms = who.bound_at_ms.map(|at| at.saturating_sub(grace));
    Ok(who)
}

/// Reads a raw body up to `limit` bytes; a longer body is a 413 before it is all read.
pub async fn read_body(payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes.to_vec()),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("reading body: {e}"))),
        Err(_) => Err(ApiError::PayloadTooLarge(format!(
            "body exceeds the limit of {limit} bytes"
        ))),
    }
}

/// One batch sync: the device's changes for any number of documents and its cursor in; the
/// server's changes in the device's scope since that cursor out (binary, see
/// `sync_core::protocol`). Refused changes are listed per document and never merged.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    params(
        ("x-chiefsync-overview" = Option<u64>, Header, description = "the version of the overview the phone holds (0 for none); with it, the answer carries the user's overview after the response when it changed (sync_core::protocol::OverviewUpdate), and nothing more when it did not"),
        ("x-chiefsync-answer-bytes" = Option<u64>, Header, description = "the most document bytes the phone wants in this answer (a phone on a slow link asks for pages it receives within its timeout); bounded to at least 64 KiB and at most the server's limit; what does not fit comes in the next pages"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "SyncRequest (CSYN envelope)"),
    responses(
        (status = 200, content_type = "application/octet-stream", description = "SyncResponse (CSYN envelope), followed inside the envelope by an OverviewUpdate when the phone named its overview and it changed"),
        (status = 400, body = ErrorBody, description = "malformed envelope, change, overview version or answer size, a document pushed twice, over 1,000 documents, or an id that is not a document id"),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "over a size limit, or the answers to the pushes exceed what one answer carries"),
        (status = 422, body = ErrorBody, description = "over a shape limit, e.g. more operations than one request may hold"),
        (status = 503, body = ErrorBody, description = "nothing was done; send the same request again after Retry-After: another sync of this device is still being answered (sync_in_progress), the server is shedding load (overloaded) or its database is unavailable (unavailable)"),
    )
)]
#[post("/sync")]
pub async fn sync(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let held_overview = header_number(
        &request,
        OVERVIEW_HEADER,
        "the version of the overview the phone holds",
    )?;
    let asked_bytes = header_number(
        &request,
        ANSWER_BYTES_HEADER,
        "the most document bytes the phone wants in the answer",
    )?;
    let body = read_body(payload, SYNC_LIMIT_BYTES).await?;
    let who = hub_caller(&caller)?;
    let hub = state.hub.clone();
    let shared = state.clone();
    let started = std::time::Instant::now();
    // Inflating the request and deflating the answer (megabytes for a district chief's first
    // sync) run beside the merge, off the few workers that serve every connection.
    let (documents, answer) = web::block(move || -> Result<_, ApiError> {
        let (request, version) =
            SyncRequest::decode_with_version(&body).map_err(sync_core::hub::HubError::from)?;
        let who = with_binding_grace(&shared, who)?;
        let now = now_ms();
        let answer = hub.answer_within(&who, &request, now, asked_bytes)?;
        // The documents are merged and stored: an overview that cannot be computed now is
        // left for the next sync rather than failing this one.
        let overview = held_overview.and_then(|held| {
            overview_update(&shared, &who.user, held, now)
                .inspect_err(|err| tracing::warn!(user = %who.user.id, %err, "overview left out"))
                .ok()
                .flatten()
        });
        Ok((
            answer.response.docs.len(),
            answer.encode_in(version, overview.as_ref()),
        ))
    })
    .await??;
    tracing::info!(
        user = %caller.user.id,
        device = %caller.device.device_id,
        documents,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sync"
    );
    Ok(HttpResponse::Ok()
        .content_type(ContentType::octet_stream())
        .body(answer))
}

/// A whole number a phone names in the request header `name` (what it `means`), when it names
/// one: the version of the overview it holds ([`OVERVIEW_HEADER`]), the most it wants in the
/// answer ([`ANSWER_BYTES_HEADER`]). A phone that does not is answered as before.
fn header_number(request: &HttpRequest, name: &str, means: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("{name} must be {means}, a whole number")))
}

/// The overview to attach for a phone holding version `held`: `user`'s overview computed by
/// sync-core from the statistics facts (kept between syncs while it holds,
/// `stats::overview`), or nothing when the phone holds it already. Users with nobody below
/// them cost no statistics.
fn overview_update(
    state: &AppState,
    user: &User,
    held: u64,
    now: i64,
) -> Result<Option<OverviewUpdate>, ApiError> {
    let current = crate::stats::overview::current(
        state.store.as_ref(),
        &state.stats,
        &state.overviews,
        user,
        now,
    )?;
    Ok((current.version != held).then(|| OverviewUpdate {
        version: current.version,
        overview: current.overview.map(|kept| kept.as_ref().clone()),
    }))
}

/// One standard automerge sync message for one document (from any automerge implementation).
/// Answers the server's next message, or 204 when there is nothing to send. A document outside
/// the caller's scope is answered as one that does not exist (an empty document). The sync state
/// is kept per (device, document) for documents in the caller's scope only; a message whose
/// changes are not all allowed is refused whole.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "document id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "automerge sync message"),
    responses(
        (status = 200, content_type = "application/octet-stream", description = "the server's next sync message"),
        (status = 204, description = "nothing to send"),
        (status = 400, body = ErrorBody, description = "malformed message, or an id that is not a document id"),
        (status = 403, body = ErrorBody, description = "a change in the message is not allowed"),
        (status = 404, body = ErrorBody, description = "the message creates a document under an id another document has"),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many messages from this device, or about this document"),
    )
)]
#[post("/docs/{id}/automerge-sync")]
pub async fn automerge_sync(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SYNC_LIMIT_BYTES).await?;
    let who = hub_caller(&caller)?;
    let hub = state.hub.clone();
    let id = id.into_inner();
    let outcome = web::block(move || {
        let who = with_binding_grace(&state, who)?;
        Ok::<_, ApiError>(hub.automerge_sync(&who, &id, &body, now_ms())?)
    })
    .await??;
    Ok(match outcome {
        AutomergeSyncOutcome::Reply(message) => HttpResponse::Ok()
            .content_type(ContentType::octet_stream())
            .body(message),
        AutomergeSyncOutcome::NothingToSend => HttpResponse::NoContent().finish(),
    })
}
