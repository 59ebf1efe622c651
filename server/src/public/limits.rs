//! Limits of the public channel: sizes, rates per client address and per asset, and the
//! tickets a solved proof of work buys.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One hour, the window every rate is counted over.
pub const WINDOW_MS: i64 = 3_600_000;

#[derive(Debug, Clone)]
pub struct PublicLimits {
    /// Leading zero bits a proof of work must reach (each bit doubles a solver's work: 17 is
    /// about a second in a phone's browser, a thousandth of that to nobody).
    pub pow_bits: u32,
    /// Tickets one client address may buy per hour.
    pub tickets_per_address: usize,
    /// Proof-of-work challenges one client address may fetch per hour (each page load takes
    /// one; a script asking for thousands would crowd out the people's).
    pub challenges_per_address: usize,
    /// Signboard PDFs one client address may have rendered per hour: each is seconds of a
    /// blocking thread (laying out CJK text, subsetting the font), and needs no account. The
    /// division's print page shows the SVGs, which are cheap, and is not counted.
    pub signboard_pdfs_per_address: usize,
    /// Reports one client address may file per hour.
    pub reports_per_address: usize,
    /// Tracking codes one client address may get wrong per hour; past that every tracking
    /// lookup from the address is refused for the rest of the hour, so guessing codes gets
    /// nowhere (a person mistypes a code a few times, not dozens).
    pub unknown_codes_per_address: usize,
    /// Reports one asset may receive per hour, from everyone together.
    pub reports_per_asset: usize,
    /// Photos one report may carry. A ticket may start uploads of at most twice as many (a
    /// photo refused on verification may be replaced by another), so a ticket cannot fill the
    /// disk with unfinished uploads under made-up names.
    pub photos_per_report: usize,
    /// Largest photo the page may upload, bytes (the page resizes to well under it).
    pub max_photo_bytes: u64,
    /// How long a ticket stays good.
    pub ticket_ttl_ms: i64,
    /// Longest description, characters.
    pub description_chars: usize,
    /// Longest reason for "not satisfied", characters.
    pub reason_chars: usize,
}

impl Default for PublicLimits {
    fn default() -> Self {
        Self {
            pow_bits: 17,
            tickets_per_address: 20,
            challenges_per_address: 60,
            signboard_pdfs_per_address: 120,
            reports_per_address: 5,
            unknown_codes_per_address: 20,
            reports_per_asset: 30,
            photos_per_report: 3,
            max_photo_bytes: 2 * 1024 * 1024,
            ticket_ttl_ms: 2 * WINDOW_MS,
            description_chars: 500,
            reason_chars: 300,
        }
    }
}

/// Events per key in the last hour.
#[derive(Debug, Default)]
pub struct Counters {
    seen: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl Counters {
    /// Counts one event for `key` if fewer than `limit` happened in the last hour; otherwise
    /// the seconds until one more is allowed.
    pub fn take(&self, key: &str, limit: usize, now_ms: i64) -> Result<(), u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Forget keys whose window has passed, so the map does not grow with every address.
        if seen.len() > 10_000 {
            seen.retain(|_, q| q.back().is_some_and(|t| now_ms - t < WINDOW_MS));
        }
        let queue = seen.entry(key.to_string()).or_default();
        while queue.front().is_some_and(|t| now_ms - t >= WINDOW_MS) {
            queue.pop_front();
        }
        if queue.len() >= limit {
            return Err(wait_secs(queue, now_ms));
        }
        queue.push_back(now_ms);
        Ok(())
    }

    /// Whether `key` is still under `limit` in the last hour, without counting an event: the
    /// seconds to wait when it is not.
    pub fn check(&self, key: &str, limit: usize, now_ms: i64) -> Result<(), u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = seen.get(key) else {
            return if limit == 0 { Err(1) } else { Ok(()) };
        };
        let recent = queue.iter().filter(|t| now_ms - **t < WINDOW_MS).count();
        if recent >= limit {
            return Err(wait_secs(queue, now_ms));
        }
        Ok(())
    }
}

fn wait_secs(queue: &VecDeque<i64>, now_ms: i64) -> u64 {
    let oldest = queue
        .iter()
        .copied()
        .find(|t| now_ms - t < WINDOW_MS)
        .unwrap_or(now_ms);
    let wait = (oldest + WINDOW_MS - now_ms).max(1000) / 1000;
    u64::try_from(wait).unwrap_or(1)
}

/// What a ticket allows: uploads and one report, for one asset, from one address.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub asset: String,
    pub issued_ms: i64,
    /// Photos uploaded whole and verified under this ticket.
    pub photos: Vec<String>,
    /// Photos whose upload began under this ticket, finished or not.
    pub started: Vec<String>,
    pub used: bool,
}

#[derive(Debug, Default)]
pub struct Tickets {
    all: Mutex<HashMap<String, Ticket>>,
}

impl Tickets {
    pub fn issue(&self, code: String, asset: String, now_ms: i64, ttl_ms: i64) {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, t| now_ms - t.issued_ms < ttl_ms);
        all.insert(
            code,
            Ticket {
                asset,
                issued_ms: now_ms,
                photos: Vec::new(),
                started: Vec::new(),
                used: false,
            },
        );
    }

    /// The ticket, if it is known, unused and not expired.
    pub fn valid(&self, code: &str, now_ms: i64, ttl_ms: i64) -> Option<Ticket> {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.get(code)
            .filter(|t| !t.used && now_ms - t.issued_ms < ttl_ms)
            .cloned()
    }

    pub fn add_photo(&self, code: &str, sha256: &str) {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = all.get_mut(code) {
            if !t.photos.iter().any(|p| p == sha256) {
                t.photos.push(sha256.to_string());
            }
        }
    }

    /// Counts an upload of `sha256` as begun under the ticket; false when the ticket has
    /// already begun `max` others.
    pub fn start_upload(&self, code: &str, sha256: &str, max: usize) -> bool {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = all.get_mut(code) else {
            return false;
        };
        if t.started.iter().any(|p| p == sha256) {
            return true;
        }
        if t.started.len() >= max {
            return false;
        }
        t.started.push(sha256.to_string());
        true
    }

    /// Marks the ticket used; false when it already was (two reports raced on one ticket).
    pub fn spend(&self, code: &str) -> bool {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        match all.get_mut(code) {
            Some(t) if !t.used => {
                t.used = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_refuses_past_its_limit_and_recovers_after_the_window() {
        let c = Counters::default();
        assert!(c.take("a", 2, 0).is_ok());
        assert!(c.take("a", 2, 10).is_ok());
        let wait = c.take("a", 2, 20).unwrap_err();
        assert!(wait > 3000 && wait <= 3600, "{wait}");
        assert!(c.take("b", 2, 20).is_ok());
        assert!(c.take("a", 2, WINDOW_MS + 1).is_ok());
    }

    #[test]
    fn a_check_counts_nothing_and_agrees_with_take() {
        let c = Counters::default();
        assert!(c.check("a", 1, 0).is_ok());
        assert!(c.check("a", 1, 0).is_ok(), "checking counted an event");
        c.take("a", 1, 0).unwrap();
        let wait = c.check("a", 1, 10).unwrap_err();
        assert!(wait > 3000 && wait <= 3600, "{wait}");
        assert!(c.check("a", 1, WINDOW_MS).is_ok());
    }

    #[test]
    fn a_ticket_begins_only_so_many_uploads() {
        let t = Tickets::default();
        t.issue("t".into(), "river".into(), 0, WINDOW_MS);
        assert!(t.start_upload("t", "a", 2));
        assert!(t.start_upload("t", "b", 2));
        assert!(
            t.start_upload("t", "a", 2),
            "resuming a begun upload is no new one"
        );
        assert!(!t.start_upload("t", "c", 2));
        assert!(!t.start_upload("unknown", "a", 2));
    }
}
