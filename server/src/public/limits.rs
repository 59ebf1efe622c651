//! Limits of the public channel: sizes, rates per client address and per asset, and the
//! tickets a solved proof of work buys.

use serde::{Deserialize, Serialize};

use crate::storage::{Shared, StoreError};

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
    /// Answers on outcomes (`POST /public/track/{code}/feedback`) one client address may send
    /// per hour, taken or refused: a resident answers once per report, and each answer reads
    /// the report's issue, so a script with one tracking code cannot send them without end.
    pub feedback_per_address: usize,
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
            feedback_per_address: 20,
            reports_per_asset: 30,
            photos_per_report: 3,
            max_photo_bytes: 2 * 1024 * 1024,
            ticket_ttl_ms: 2 * WINDOW_MS,
            description_chars: 500,
            reason_chars: 300,
        }
    }
}

/// Counts one event for `key` if fewer than `limit` happened in the last hour, on every server
/// of the store together; otherwise the seconds until one more is allowed.
pub fn take(
    store: &dyn Shared,
    key: &str,
    limit: usize,
    now_ms: i64,
) -> Result<Result<(), u64>, StoreError> {
    Ok(store
        .count_event(key, limit, WINDOW_MS, now_ms)?
        .map_err(|until| wait_secs(until, now_ms)))
}

/// Whether `key` is still under `limit` in the last hour, without counting an event: the
/// seconds to wait when it is not.
pub fn check(
    store: &dyn Shared,
    key: &str,
    limit: usize,
    now_ms: i64,
) -> Result<Result<(), u64>, StoreError> {
    Ok(store
        .events_below(key, limit, WINDOW_MS, now_ms)?
        .map_err(|until| wait_secs(until, now_ms)))
}

/// Whole seconds from `now_ms` to `until_ms`, at least one.
fn wait_secs(until_ms: i64, now_ms: i64) -> u64 {
    u64::try_from((until_ms - now_ms).max(1000) / 1000).unwrap_or(1)
}

/// What a ticket allows: uploads and one report, for one asset, from one address. Kept where
/// every server reads it ([`Shared::kept`]), so a ticket bought through one server is good on
/// all, and spent once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    pub asset: String,
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// Photos uploaded whole and verified under this ticket.
    pub photos: Vec<String>,
    /// Photos whose upload began under this ticket, finished or not.
    pub started: Vec<String>,
    pub used: bool,
}

fn ticket_key(code: &str) -> String {
    format!("public.ticket/{code}")
}

fn corrupt(key: &str, e: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
    }
}

fn encode(key: &str, ticket: &Ticket) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(ticket).map_err(|e| corrupt(key, e))
}

/// Keeps a new ticket `code` for `asset`, good for `ttl_ms`.
pub fn issue(
    store: &dyn Shared,
    code: &str,
    asset: String,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<(), StoreError> {
    let key = ticket_key(code);
    let ticket = Ticket {
        asset,
        issued_ms: now_ms,
        expires_ms: now_ms.saturating_add(ttl_ms),
        photos: Vec::new(),
        started: Vec::new(),
        used: false,
    };
    if store.keep(
        &key,
        None,
        &encode(&key, &ticket)?,
        ticket.expires_ms,
        now_ms,
    )? {
        Ok(())
    } else {
        Err(StoreError::Conflict(key))
    }
}

/// The ticket, if it is known, unused and not expired.
pub fn valid(store: &dyn Shared, code: &str, now_ms: i64) -> Result<Option<Ticket>, StoreError> {
    let key = ticket_key(code);
    let Some(kept) = store.kept(&key, now_ms)? else {
        return Ok(None);
    };
    let ticket: Ticket = serde_json::from_slice(&kept.value).map_err(|e| corrupt(&key, e))?;
    Ok((!ticket.used).then_some(ticket))
}

/// Applies `change` to the ticket as stored, and stores it when `change` says so; read and
/// applied again whenever another request (on any server) wrote the ticket in between. `None`
/// for a ticket unknown or expired; otherwise what `change` answered.
fn update<T>(
    store: &dyn Shared,
    code: &str,
    now_ms: i64,
    mut change: impl FnMut(&mut Ticket) -> (T, bool),
) -> Result<Option<T>, StoreError> {
    let key = ticket_key(code);
    loop {
        let Some(kept) = store.kept(&key, now_ms)? else {
            return Ok(None);
        };
        let mut ticket: Ticket =
            serde_json::from_slice(&kept.value).map_err(|e| corrupt(&key, e))?;
        let (answer, write) = change(&mut ticket);
        if !write
            || store.keep(
                &key,
                Some(kept.version),
                &encode(&key, &ticket)?,
                ticket.expires_ms,
                now_ms,
            )?
        {
            return Ok(Some(answer));
        }
    }
}

/// Records a photo uploaded whole and verified under the ticket.
pub fn add_photo(
    store: &dyn Shared,
    code: &str,
    sha256: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    update(store, code, now_ms, |t| {
        if t.photos.iter().any(|p| p == sha256) {
            ((), false)
        } else {
            t.photos.push(sha256.to_owned());
            ((), true)
        }
    })?;
    Ok(())
}

/// Counts an upload of `sha256` as begun under the ticket; false when the ticket has already
/// begun `max` others (or is unknown).
pub fn start_upload(
    store: &dyn Shared,
    code: &str,
    sha256: &str,
    max: usize,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let begun = update(store, code, now_ms, |t| {
        if t.started.iter().any(|p| p == sha256) {
            (true, false)
        } else if t.started.len() >= max {
            (false, false)
        } else {
            t.started.push(sha256.to_owned());
            (true, true)
        }
    })?;
    Ok(begun.unwrap_or(false))
}

/// Marks the ticket used; false when it already was (two reports raced on one ticket, through
/// one server or two) or is unknown.
pub fn spend(store: &dyn Shared, code: &str, now_ms: i64) -> Result<bool, StoreError> {
    let spent = update(store, code, now_ms, |t| {
        if t.used {
            (false, false)
        } else {
            t.used = true;
            (true, true)
        }
    })?;
    Ok(spent.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalShared;

    #[test]
    fn a_rate_refuses_past_its_limit_and_recovers_after_the_window() {
        let c = LocalShared::default();
        assert!(take(&c, "a", 2, 0).unwrap().is_ok());
        assert!(take(&c, "a", 2, 10).unwrap().is_ok());
        let wait = take(&c, "a", 2, 20).unwrap().unwrap_err();
        assert!(wait > 3000 && wait <= 3600, "{wait}");
        assert!(take(&c, "b", 2, 20).unwrap().is_ok());
        assert!(take(&c, "a", 2, WINDOW_MS + 1).unwrap().is_ok());
    }

    #[test]
    fn a_check_counts_nothing_and_agrees_with_take() {
        let c = LocalShared::default();
        assert!(check(&c, "a", 1, 0).unwrap().is_ok());
        assert!(
            check(&c, "a", 1, 0).unwrap().is_ok(),
            "checking counted an event"
        );
        take(&c, "a", 1, 0).unwrap().unwrap();
        let wait = check(&c, "a", 1, 10).unwrap().unwrap_err();
        assert!(wait > 3000 && wait <= 3600, "{wait}");
        assert!(check(&c, "a", 1, WINDOW_MS).unwrap().is_ok());
    }

    #[test]
    fn a_ticket_begins_only_so_many_uploads_and_is_spent_once() {
        let t = LocalShared::default();
        issue(&t, "t", "river".into(), 0, WINDOW_MS).unwrap();
        assert!(start_upload(&t, "t", "a", 2, 1).unwrap());
        assert!(start_upload(&t, "t", "b", 2, 1).unwrap());
        assert!(
            start_upload(&t, "t", "a", 2, 1).unwrap(),
            "resuming a begun upload is no new one"
        );
        assert!(!start_upload(&t, "t", "c", 2, 1).unwrap());
        assert!(!start_upload(&t, "unknown", "a", 2, 1).unwrap());
        add_photo(&t, "t", "a", 2).unwrap();
        assert_eq!(valid(&t, "t", 3).unwrap().unwrap().photos, ["a"]);
        assert!(spend(&t, "t", 4).unwrap());
        assert!(!spend(&t, "t", 5).unwrap(), "spent twice");
        assert!(valid(&t, "t", 6).unwrap().is_none());
        issue(&t, "old", "river".into(), 0, WINDOW_MS).unwrap();
        assert!(valid(&t, "old", WINDOW_MS).unwrap().is_none(), "expired");
        assert!(!spend(&t, "old", WINDOW_MS).unwrap());
    }
}
