//! Uploading the photo outbox: `HEAD /blobs/{sha256}` to learn what the server holds, then
//! `PUT` of the rest in chunks, resuming where a cut connection left off.
//!
//! The outbox (`sync_core::store`) keeps each photo's state, backoff and offset; this file only
//! moves bytes and reports back to it. A server without the photo endpoint (older than the
//! phone) leaves photos waiting, untouched, for a later sync; a photo the server refuses keeps
//! its reason for the chief to see.

use std::fs;

use sync_core::photo::sha256_hex;
use sync_core::store::{OutboxEntry, UploadState};

use crate::client::PhoneApp;
use crate::error::{ChiefsyncError, Result};
use crate::http::{BlobHead, PutOutcome};
use crate::types::SyncReport;

/// Bytes per `PUT`: small enough to resume cheaply on a weak mobile link and to stay under
/// any reasonable server body limit, large enough that a prepared photo takes a few requests.
pub const CHUNK_BYTES: usize = 128 * 1024;

/// How one photo's upload ended.
#[derive(Debug)]
enum Upload {
    /// The server has the whole photo; this many bytes were sent now.
    Done(u64),
    NoRoute,
    Refused(String),
}

/// Uploads every photo that is due, in the outbox's order, and counts what happened.
pub(crate) fn upload_due(client: &PhoneApp, now_ms: i64, report: &mut SyncReport) {
    let due = match client.store.due_uploads(now_ms) {
        Ok(due) => due,
        Err(err) => {
            report.errors.push(format!("photo queue: {err}"));
            return;
        }
    };
    client.set_progress(|p| {
        p.photos_total = crate::client::count(due.len());
        p.photo_bytes_total = due.iter().map(|e| e.size).sum();
    });
    // Bytes of the photos already on the server in this sync; the photo being sent adds its
    // offset as its chunks go up.
    let mut done_bytes = 0;
    for entry in due {
        let outcome = upload_one(client, &entry, done_bytes).and_then(|outcome| {
            match &outcome {
                Upload::Done(_) => client.store.mark_done(&entry.sha256)?,
                Upload::Refused(reason) => client.store.mark_refused(&entry.sha256, reason)?,
                Upload::NoRoute => return Ok(outcome),
            };
            Ok(outcome)
        });
        match outcome {
            Ok(Upload::Done(sent)) => {
                report.photos_uploaded += 1;
                report.photo_bytes_up += sent;
                done_bytes += entry.size;
                client.set_progress(|p| {
                    p.photos_sent += 1;
                    p.photo_bytes_sent = done_bytes;
                });
            }
            Ok(Upload::Refused(reason)) => {
                report.photos_refused += 1;
                report
                    .errors
                    .push(format!("photo {} refused: {reason}", entry.sha256));
            }
            Ok(Upload::NoRoute) => {
                report
                    .errors
                    .push("the server cannot take photos yet; they wait on the phone".into());
                break;
            }
            Err(err) => {
                report
                    .errors
                    .push(format!("photo {} not uploaded: {err}", entry.sha256));
                if let Err(store_err) = client.store.mark_failed(&entry.sha256, now_ms) {
                    report.errors.push(format!("photo queue: {store_err}"));
                }
                // Without a network the next photos would fail the same way.
                if matches!(err, ChiefsyncError::Network { .. }) {
                    break;
                }
            }
        }
    }
    report.photos_waiting = match client.store.outbox() {
        Ok(all) => all
            .iter()
            .filter(|e| {
                matches!(
                    e.state,
                    UploadState::Waiting | UploadState::Uploading { .. }
                )
            })
            .count() as u32,
        Err(err) => {
            report.errors.push(format!("photo queue: {err}"));
            0
        }
    };
}

fn upload_one(client: &PhoneApp, entry: &OutboxEntry, done_bytes: u64) -> Result<Upload> {
    let progress = |offset: u64| client.set_progress(|p| p.photo_bytes_sent = done_bytes + offset);
    let account = &client.account;
    let api = account.api();
    let sha = entry.sha256.as_str();
    let head = account.authorized(|token| api.blob_head(token, sha, entry.size))?;
    let mut offset = match head {
        BlobHead::Complete => return Ok(Upload::Done(0)),
        BlobHead::Partial(offset) => offset,
        BlobHead::Missing => 0,
    };
    let bytes = match fs::read(&entry.path) {
        Ok(bytes) => bytes,
        Err(err) => {
            return Ok(Upload::Refused(format!(
                "the photo file {} cannot be read on this phone: {err}",
                entry.path
            )))
        }
    };
    if bytes.len() as u64 != entry.size || sha256_hex(&bytes) != sha {
        return Ok(Upload::Refused(format!(
            "the photo file {} on this phone is damaged",
            entry.path
        )));
    }
    let size = entry.size;
    let started_at = offset;
    let known = match entry.state {
        UploadState::Uploading { offset } => offset,
        _ => 0,
    };
    if known != offset {
        client.store.mark_progress(sha, offset)?;
    }
    let mut resynced = false;
    while offset < size {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start.saturating_add(CHUNK_BYTES).min(bytes.len());
        let chunk = &bytes[start..end];
        match account.authorized(|token| api.blob_put(token, sha, offset, size, chunk))? {
            PutOutcome::Stored(held) if held > offset => {
                offset = held;
                resynced = false;
                client.store.mark_progress(sha, offset)?;
                progress(offset);
            }
            PutOutcome::Stored(_) | PutOutcome::OffsetMismatch if !resynced => {
                // The server kept less (or more) than we thought: ask once where to go on.
                resynced = true;
                offset = match account.authorized(|token| api.blob_head(token, sha, size))? {
                    BlobHead::Complete => size,
                    BlobHead::Partial(held) => held,
                    BlobHead::Missing => 0,
                };
                client.store.mark_progress(sha, offset)?;
            }
            PutOutcome::Stored(held) => {
                return Err(ChiefsyncError::Server {
                    status: 200,
                    code: "no_progress".into(),
                    detail: format!("the server stays at {held} of {size} bytes"),
                })
            }
            PutOutcome::OffsetMismatch => {
                return Err(ChiefsyncError::Server {
                    status: 409,
                    code: "offset_mismatch".into(),
                    detail: format!("the server refuses bytes from {offset} twice"),
                })
            }
            PutOutcome::NoRoute => return Ok(Upload::NoRoute),
            PutOutcome::Refused(reason) => return Ok(Upload::Refused(reason)),
        }
    }
    Ok(Upload::Done(size.saturating_sub(started_at)))
}
