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

/// Most events all keys together keep. Past it the oldest are forgotten, as if their hour had
/// passed: a flood from ever new networks costs the server bounded memory, and only forgives
/// the networks it came from.
const MAX_EVENTS: usize = 200_000;

/// Events per key in the last hour.
#[derive(Debug, Default)]
pub struct Counters {
    seen: Mutex<Seen>,
}

/// The events of each key, and every event in the order it was counted, so the ones whose
/// hour has passed are forgotten a few at a time as new ones come, never by a pass over every
/// key under the lock.
#[derive(Debug, Default)]
struct Seen {
    by_key: HashMap<String, VecDeque<i64>>,
    order: VecDeque<(i64, String)>,
}

impl Seen {
    /// Forgets the events whose hour has passed, and the oldest beyond room for one more under
    /// [`MAX_EVENTS`]. Each event is forgotten once, so this costs what counting it did.
    fn forget(&mut self, now_ms: i64) {
        while let Some((at, _)) = self.order.front() {
            if now_ms - at < WINDOW_MS && self.order.len() < MAX_EVENTS {
                break;
            }
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(queue) = self.by_key.get_mut(&key) {
                queue.pop_front();
                if queue.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

impl Counters {
    /// Counts one event for `key` if fewer than `limit` happened in the last hour; otherwise
    /// the seconds until one more is allowed.
    pub fn take(&self, key: &str, limit: usize, now_ms: i64) -> Result<(), u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.forget(now_ms);
        let recent = seen.by_key.get(key).map_or(0, |q| recent(q, now_ms));
        if recent >= limit {
            return Err(seen.by_key.get(key).map_or(1, |q| wait_secs(q, now_ms)));
        }
        seen.by_key
            .entry(key.to_string())
            .or_default()
            .push_back(now_ms);
        seen.order.push_back((now_ms, key.to_string()));
        Ok(())
    }

    /// Whether `key` is still under `limit` in the last hour, without counting an event: the
    /// seconds to wait when it is not.
    pub fn check(&self, key: &str, limit: usize, now_ms: i64) -> Result<(), u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = seen.by_key.get(key) else {
            return if limit == 0 { Err(1) } else { Ok(()) };
        };
        if recent(queue, now_ms) >= limit {
            return Err(wait_secs(queue, now_ms));
        }
        Ok(())
    }

    /// How many events all keys together keep now.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        (seen.by_key.len(), seen.order.len())
    }
}

/// The events of a key in the hour before `now_ms`.
fn recent(queue: &VecDeque<i64>, now_ms: i64) -> usize {
    queue.iter().filter(|t| now_ms - **t < WINDOW_MS).count()
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
    all: Mutex<Issued>,
}

/// The tickets by code, and their codes in the order they were issued.
#[derive(Debug, Default)]
struct Issued {
    by_code: HashMap<String, Ticket>,
    order: VecDeque<(i64, String)>,
}

impl Tickets {
    pub fn issue(&self, code: String, asset: String, now_ms: i64, ttl_ms: i64) {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        // Expired tickets are forgotten oldest first, a few for each new one, never by a pass
        // over all of them under the lock.
        while let Some((issued, _)) = all.order.front() {
            if now_ms - issued < ttl_ms {
                break;
            }
            if let Some((_, old)) = all.order.pop_front() {
                if all
                    .by_code
                    .get(&old)
                    .is_some_and(|t| now_ms - t.issued_ms >= ttl_ms)
                {
                    all.by_code.remove(&old);
                }
            }
        }
        all.order.push_back((now_ms, code.clone()));
        all.by_code.insert(
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
        all.by_code
            .get(code)
            .filter(|t| !t.used && now_ms - t.issued_ms < ttl_ms)
            .cloned()
    }

    pub fn add_photo(&self, code: &str, sha256: &str) {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = all.by_code.get_mut(code) {
            if !t.photos.iter().any(|p| p == sha256) {
                t.photos.push(sha256.to_string());
            }
        }
    }

    /// Counts an upload of `sha256` as begun under the ticket; false when the ticket has
    /// already begun `max` others.
    pub fn start_upload(&self, code: &str, sha256: &str, max: usize) -> bool {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = all.by_code.get_mut(code) else {
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
        match all.by_code.get_mut(code) {
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
    fn old_events_are_forgotten_as_new_ones_come_and_never_past_the_cap() {
        let c = Counters::default();
        for i in 0..1_000 {
            c.take(&format!("network-{i}"), 5, i).unwrap();
        }
        assert_eq!(c.kept(), (1_000, 1_000));
        // An hour on, each new event forgets those whose hour has passed.
        c.take("late", 5, WINDOW_MS + 500).unwrap();
        assert_eq!(c.kept(), (500, 500));
        c.take("late", 5, 2 * WINDOW_MS).unwrap();
        assert_eq!(
            c.kept(),
            (1, 2),
            "only the late network's two events are left"
        );
        // A flood from ever new networks keeps at most MAX_EVENTS; the newest still count.
        let c = Counters::default();
        for i in 0..MAX_EVENTS + 10 {
            c.take(&i.to_string(), 1, 0).unwrap();
        }
        assert_eq!(c.kept(), (MAX_EVENTS, MAX_EVENTS));
        assert!(c.take(&(MAX_EVENTS + 9).to_string(), 1, 0).is_err());
        assert!(c.take("0", 1, 0).is_ok(), "the oldest were forgotten");
    }

    #[test]
    fn expired_tickets_are_forgotten_as_new_ones_are_issued() {
        let t = Tickets::default();
        for i in 0..100 {
            t.issue(format!("t{i}"), "river".into(), i, WINDOW_MS);
        }
        t.issue("new".into(), "river".into(), WINDOW_MS + 50, WINDOW_MS);
        let all = t.all.lock().unwrap();
        assert_eq!(all.by_code.len(), 50);
        assert_eq!(all.order.len(), 50);
        assert!(all.by_code.contains_key("t51") && !all.by_code.contains_key("t50"));
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
