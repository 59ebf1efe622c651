//! The public's channel into the rectification loop (处置后督查): a signboard for every asset with
//! a QR code, a report page behind it for anyone with a phone, hotline and letter reports entered
//! by office staff, and an answer back to the person who reported.
//!
//! A report becomes an ordinary issue document, written by the server under its own actor in the
//! name of the public reporter (`sync_core::public::PUBLIC_REPORTER`), with its `source`; it lands
//! in the change feed like any other, so the asset's chiefs receive it at their next sync and the
//! supervisor finds it on the board with its duplicate hints. What is not for phones stays here,
//! beside the case ([`Case`]): the tracking code, the reporter's phone number (kept
//! [`PHONE_RETENTION_DAYS`] days, shown to the supervising office only, never in a document or
//! an export) and what the person said of the outcome.
//!
//! Abuse: the page has no account, so every write needs a ticket bought with a small proof of
//! work ([`pow`]) and is counted per client address and per asset ([`limits`]); an answer on
//! the outcome needs the tracking code, is counted per address and locks only its own case
//! ([`tracking`]); photos go through the same verification as phone uploads; every field has a
//! size limit. Challenges, tickets and counts are shared by every server on one database, so
//! each step of a report may reach a different server.

pub mod api;
pub mod cases;
pub mod limits;
pub mod office;
pub mod pages;
pub mod pow;
pub mod report;
pub mod signboard;
pub mod tracking;

pub use cases::{Case, Feedback, PHONE_RETENTION_DAYS};
pub use limits::PublicLimits;

use std::sync::Mutex;

/// The public channel's limits in force. Proof-of-work challenges, tickets and the counts of
/// the rate limits are kept where every server of the store reads them (`storage::Shared`:
/// [`pow`], [`limits`]); cases are in the store ([`cases`]).
#[derive(Debug, Default)]
pub struct PublicState {
    pub limits: Mutex<PublicLimits>,
}

impl PublicState {
    pub fn limits(&self) -> PublicLimits {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the limits (the command line, or a test that needs small ones).
    pub fn set_limits(&self, limits: PublicLimits) {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
    }
}

use utoipa_actix_web::service_config::ServiceConfig;

/// The public pages, outside `/api/v1`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(pages::report_page)
        .service(pages::track_page)
        .service(pages::report_js)
        .service(pages::track_js)
        .service(pages::public_css)
        .service(pages::office_page)
        .service(pages::office_js)
        .service(pages::signboards_page);
}

/// The public channel's endpoints, inside `/api/v1`.
pub fn api_routes(cfg: &mut ServiceConfig) {
    cfg.service(api::get_public_asset)
        .service(api::get_challenge)
        .service(report::post_ticket)
        .service(report::head_public_photo)
        .service(report::put_public_photo)
        .service(report::post_public_report)
        .service(tracking::get_track)
        .service(tracking::get_track_photo)
        .service(tracking::post_feedback)
        .service(api::get_signboard)
        .service(office::post_office_report)
        .service(office::get_office_case)
        .service(office::put_supervision_phone)
        .service(api::public_stats);
}
