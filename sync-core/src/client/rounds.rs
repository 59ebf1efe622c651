//! One sync as round trips: push, receive, and another round trip only when the server lacked
//! dependencies of what was pushed, or when more waits on either side than one round trip
//! carries (a page). What the phone brings to it is a [`Rounds`]: how a request reaches the
//! server, what is held during each round trip (the phone library's lock on its documents), the
//! time each round trip is made at, and where an overview the server attached goes.

use super::{ClientError, SyncClient, SyncReport, Transport};
use crate::protocol::{OverviewUpdate, SyncResponse};

/// The protocol needs at most two round trips; a third covers a server that lost a
/// dependency twice in a row before the engine gives up for this attempt.
const MAX_ROUND_TRIPS: u32 = 3;
/// Pages one sync takes at most: answers that say more waits ([`SyncResponse::more`]) and
/// requests that leave documents to send for the next one. An office's first sync of a large
/// district comes in tens of pages; past this, the sync ends and its report says more waits.
pub(super) const MAX_PAGES: u32 = 64;

/// What a phone brings to one sync ([`SyncClient::sync_in_rounds`]).
pub trait Rounds {
    /// How a round trip fails (the phone's typed network and server errors).
    type Error: From<ClientError>;
    /// What is held for each round trip (building the request, sending it, applying the
    /// answer) and let go between them.
    type Hold;
    /// Taken before each round trip, given the report so far (for a progress display).
    fn hold(&mut self, so_far: &SyncReport) -> Self::Hold;
    /// Sends one request body to `POST /api/v1/sync` and returns the answer's body.
    fn send(&mut self, body: Vec<u8>) -> Result<Vec<u8>, Self::Error>;
    /// The time of the next round trip (Unix ms): its request's bounds and what its answer
    /// records (refused changes are dated by it). Read again for each page of a long sync.
    fn now_ms(&mut self) -> i64;
    /// The overview the server attached after an answer (the phone named the one it holds);
    /// by default it is left aside.
    fn overview(&mut self, update: OverviewUpdate) -> Result<(), Self::Error> {
        let _ = update;
        Ok(())
    }
}

/// A sync at one time over one way of sending, holding nothing between round trips.
struct AtTime<F> {
    send: F,
    now_ms: i64,
}

impl<E: From<ClientError>, F: FnMut(Vec<u8>) -> Result<Vec<u8>, E>> Rounds for AtTime<F> {
    type Error = E;
    type Hold = ();

    fn hold(&mut self, _: &SyncReport) {}

    fn send(&mut self, body: Vec<u8>) -> Result<Vec<u8>, E> {
        (self.send)(body)
    }

    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }
}

impl SyncClient<'_> {
    /// One full sync at `now_ms` (see the module); each page is one more round trip, up to
    /// [`MAX_PAGES`].
    pub fn sync(
        &self,
        transport: &mut dyn Transport,
        now_ms: i64,
    ) -> Result<SyncReport, ClientError> {
        self.sync_with(|body| transport.sync(body), now_ms)
    }

    /// [`Self::sync`] over a round trip whose failures have their own type (the phone's typed
    /// network and server errors): they come back as `send` returned them.
    pub fn sync_with<E: From<ClientError>>(
        &self,
        send: impl FnMut(Vec<u8>) -> Result<Vec<u8>, E>,
        now_ms: i64,
    ) -> Result<SyncReport, E> {
        self.sync_in_rounds(&mut AtTime { send, now_ms })
    }

    /// One full sync with what the phone brings to it ([`Rounds`]): its lock held for each
    /// round trip and let go between them, so that a chief's edits wait for one round trip,
    /// not for all the pages of a sync; its clock read for each round trip; the overview kept
    /// from the answer as it is read, not read again.
    pub fn sync_in_rounds<R: Rounds>(&self, rounds: &mut R) -> Result<SyncReport, R::Error> {
        let mut report = SyncReport::default();
        loop {
            let held = rounds.hold(&report);
            let now_ms = rounds.now_ms();
            let outgoing = self.build_request(now_ms)?;
            report.refused += outgoing.held_back;
            report.docs_sent += outgoing.docs.len();
            report.changes_sent += outgoing.docs.iter().map(|d| d.changes.len()).sum::<usize>();
            let body = outgoing.encode();
            report.bytes_up += body.len();
            let answer = rounds.send(body)?;
            report.bytes_down += answer.len();
            report.round_trips += 1;
            let (response, overview) =
                SyncResponse::decode_with_overview(&answer).map_err(ClientError::from)?;
            drop(answer);
            if let Some(update) = overview {
                rounds.overview(update)?;
            }
            let again = self.apply_response(&outgoing, &response, now_ms, &mut report)?;
            // Each page earns the sync one more round trip, up to `MAX_PAGES`; the round
            // trips for lost dependencies stay bounded as before. A page counts only when the
            // round moved on: the answer brought documents (one for each pushed document,
            // which is what takes a pushed document off the waiting list) or a later cursor.
            let waiting = outgoing.more_waits(&response);
            let moved = !response.docs.is_empty() || response.cursor > outgoing.cursor;
            let page = waiting && moved;
            drop(held);
            if page && report.pages == MAX_PAGES {
                report.more_waiting = true;
                return Ok(report);
            }
            report.pages += u32::from(page);
            if !(again || page) {
                report.more_waiting = waiting;
                return Ok(report);
            }
            if report.round_trips >= MAX_ROUND_TRIPS + report.pages {
                report.more_waiting = true;
                return Ok(report);
            }
        }
    }
}

/// What a phone asks an answer to carry when it has not measured its link: a first page that
/// crosses a field link (256 kbit/s, 5 % loss) in about ten seconds.
pub const FIRST_ASKED_BYTES: u64 = 256 * 1024;
/// How long a page should take at the measured rate: a quarter of the phone library's request
/// timeout (120 s), leaving room for a slower moment of the same link.
const PAGE_SECONDS: f64 = 30.0;
/// Answers smaller than this say little about the link (the server's work and the round trip
/// take most of their time), and are not measured.
const MEASURED_FROM_BYTES: usize = 32 * 1024;

/// What a phone has measured of its link to the server in this sync, so that it asks for
/// answers it can receive within its request timeout (`protocol::ANSWER_BYTES_HEADER`): a new
/// chief's first sync over a field link comes in pages instead of one answer that times out.
/// Measured anew in each sync: a phone moves between the office's Wi-Fi and a river bank
/// between two syncs, and a page sized by the last sync's link outlasts the timeout on the
/// next one (and is sent again as it was, by the library's retries). A sync with more than
/// one page to receive costs a round trip or two more on a fast link (the first page's rate
/// counts the server's work and the round trip too).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkRate {
    /// Bytes per second the last measured answer came at.
    bytes_per_s: Option<f64>,
}

impl LinkRate {
    /// The document bytes to ask the next answer to carry: what arrives in [`PAGE_SECONDS`]
    /// at the measured rate (wire bytes, which deflating makes fewer than document bytes),
    /// [`FIRST_ASKED_BYTES`] before anything was measured, and never less than that.
    pub fn ask(&self) -> u64 {
        match self.bytes_per_s {
            Some(rate) if rate.is_finite() && rate > 0.0 => {
                ((rate * PAGE_SECONDS) as u64).max(FIRST_ASKED_BYTES)
            }
            _ => FIRST_ASKED_BYTES,
        }
    }

    /// An answer of `bytes` on the wire arrived `elapsed` after its request was sent.
    pub fn arrived(&mut self, bytes: usize, elapsed: std::time::Duration) {
        if bytes >= MEASURED_FROM_BYTES {
            self.bytes_per_s = Some(bytes as f64 / elapsed.as_secs_f64().max(1e-3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_slow_link_asks_for_pages_it_receives_in_half_a_minute() {
        let mut link = LinkRate::default();
        assert_eq!(link.ask(), FIRST_ASKED_BYTES, "nothing measured yet");
        // A small answer says nothing of the link.
        link.arrived(1_000, Duration::from_secs(2));
        assert_eq!(link.ask(), FIRST_ASKED_BYTES);
        // The field link: 256 KiB in 12.8 s, 20 KiB/s.
        link.arrived(256 * 1024, Duration::from_millis(12_800));
        assert_eq!(link.ask(), 30 * 20 * 1024);
        // A fast link asks for much more; the server bounds it.
        link.arrived(4 << 20, Duration::from_millis(400));
        assert_eq!(link.ask(), 300 << 20);
        // Never less than the first ask, however slow the last answer came.
        link.arrived(64 * 1024, Duration::from_secs(600));
        assert_eq!(link.ask(), FIRST_ASKED_BYTES);
    }
}
