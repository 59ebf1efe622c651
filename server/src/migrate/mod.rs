//! `chiefsync migrate --from DIR --to postgres://… [--blobs s3://…]`: moves a district's
//! stopped sled server (everything it keeps) into a cluster's PostgreSQL database, and its
//! photos with their thumbnails into the cluster's bucket, then proves the move.
//!
//! What moves, through the store traits on both sides (never through either side's tables):
//! accounts with their password hashes, each phone's binding (actor id, session: its tokens
//! stay valid), refresh tokens, divisions and assets, settings and the records kept beside
//! them (posts, setup codes, public cases, the admin audit), every document with its audit
//! and at the feed position it had (so every phone's cursor keeps its meaning), the feed head,
//! and each phone's device ledger: what it holds, its scope, its last sync, and the automerge
//! sync states of single documents. Those states are moved rather than left out as a restore
//! leaves them: a restore comes back from a copy older than what phones hold, a migration
//! takes the stopped server whole, so every state names heads the new server holds.
//!
//! What does not move: sign-in failures and photo bytes counted per day (a sled server keeps
//! them in memory only: they are gone at its stop, as at any restart); photo uploads left
//! unfinished (a phone restarts them at its next upload); the token signing key (a file in
//! DIR: copy it into every cluster server's data directory, or phones sign in again once).
//!
//! Proof: the sled store's census ([`Census`]), counted from every table it has, must match
//! what was read through the listings (a kind of record the listings miss stops the
//! migration); then every record is read back from the target and compared (documents by
//! feed position, automerge heads and audit), the feed heads compared, and every document
//! loaded as `chiefsync verify` loads it.
//!
//! Refusals, writing nothing: a source a server still runs over (sled's lock), a target
//! database that holds records (unless `--into-existing`, and never one that holds documents),
//! a bucket that does not answer. A migration that stops halfway (the machine, the network)
//! leaves a marker in the target, and the same command run again resumes it: records are
//! written again as they are, documents already placed at their position are checked and
//! kept, the rest placed. A source changed since (a server started over it) is refused then.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use sync_core::hub::{AuditEntry, AuditLog, DeviceLedger, DocumentStore, HubError};

use crate::blobs::{BlobError, BlobStore, FileBlobs};
use crate::storage::{Census, SledStore, Store, StoreError};

/// The settings key of the marker a migration leaves in its target.
pub const MARKER: &str = "migration.from-sled";

/// The file a sled server keeps its generated token signing key in.
const SIGNING_KEY_FILE: &str = "jwt-signing.key";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source or the target is not acceptable; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// What arrived differs from what was sent.
    #[error("the migrated copy differs from the source: {0}")]
    Differs(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("documents: {0}")]
    Hub(#[from] HubError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

/// The marker left in the target: where the migration came from and whether it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    from: String,
    /// The source's feed head and census: a source that changed since is another source.
    feed_head: u64,
    documents: u64,
    started_at_ms: i64,
    finished_at_ms: Option<i64>,
}

/// What a migration moved and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migrated {
    pub from: String,
    /// Whether it continued a migration that had stopped halfway.
    pub resumed: bool,
    /// Both stores' feed head (equal).
    pub feed_head: u64,
    /// What the source holds, counted from its tables; the target holds the same.
    pub census: Census,
    /// Photos moved (and checked against their names), and their thumbnails.
    pub photos: u64,
    pub thumbnails: u64,
    /// Whether photos moved (`--blobs`); without, they stay in DIR/blobs.
    pub photos_moved: bool,
    /// Documents loaded back from the target, none damaged.
    pub documents_verified: u64,
    /// The source's token signing key: copy it into every cluster server's data directory.
    pub signing_key_file: Option<String>,
    pub took_ms: u64,
}

/// Options of [`migrate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Accept a target that already holds accounts or settings (never documents): records of
    /// the source replace those of the same key.
    pub into_existing: bool,
}

/// Opens the stopped sled server in `from` and moves it into `target` (and its photos into
/// `target_blobs`, when given).
pub fn migrate_dir(
    from: &Path,
    target: &dyn Store,
    target_blobs: Option<&dyn BlobStore>,
    options: Options,
) -> Result<Migrated, MigrateError> {
    let from = std::path::absolute(from).map_err(|e| MigrateError::Refused(e.to_string()))?;
    let db = from.join("db");
    if !db.is_dir() {
        return Err(MigrateError::Refused(format!(
            "{} holds no ChiefSync data (no db directory)",
            from.display()
        )));
    }
    let source = SledStore::open(&db).map_err(|e| {
        MigrateError::Refused(format!(
            "{} cannot be opened ({e}): stop the server running over it first",
            from.display()
        ))
    })?;
    let blobs_dir = from.join("blobs");
    let source_blobs = if blobs_dir.is_dir() {
        Some(FileBlobs::open(&blobs_dir)?)
    } else {
        None
    };
    let key = from.join(SIGNING_KEY_FILE);
    let mut migrated = migrate(
        &source,
        &from,
        source_blobs.as_ref().map(|b| b as &dyn BlobStore),
        target,
        target_blobs,
        options,
    )?;
    migrated.signing_key_file = key.is_file().then(|| key.display().to_string());
    Ok(migrated)
}

/// Moves `source` (the server in `from`) into `target`; see the module.
pub fn migrate(
    source: &SledStore,
    from: &Path,
    source_blobs: Option<&dyn BlobStore>,
    target: &dyn Store,
    target_blobs: Option<&dyn BlobStore>,
    options: Options,
) -> Result<Migrated, MigrateError> {
    let started = Instant::now();
    let census = source
        .census()
        .map_err(|e| MigrateError::Refused(format!("the source cannot be moved whole: {e}")))?;
    let marker = Marker {
        from: from.display().to_string(),
        feed_head: source.feed_head()?,
        documents: census.documents,
        started_at_ms: crate::state::now_ms(),
        finished_at_ms: None,
    };
    let resumed = admit(target, &marker, options)?;
    target.put_meta(
        MARKER,
        &serde_json::to_vec(&marker).expect("a marker serializes"),
    )?;

    move_records(source, target)?;
    move_documents(source, target)?;
    move_ledger(source, target)?;
    let (photos, thumbnails) = match (source_blobs, target_blobs) {
        (Some(from), Some(to)) => move_photos(from, to)?,
        _ => (0, 0),
    };
    target.flush()?;

    let documents_verified = compare(source, target, &census, options)?;
    if let (Some(from), Some(to)) = (source_blobs, target_blobs) {
        compare_photos(from, to)?;
    }
    let report = crate::integrity::check_documents(target)?;
    if let Some(first) = report.damaged.first() {
        return Err(MigrateError::Differs(format!(
            "{} documents do not load from the target, the first {}: {}",
            report.damaged.len(),
            first.id,
            first.reason
        )));
    }

    let finished = Marker {
        finished_at_ms: Some(crate::state::now_ms()),
        ..marker
    };
    target.put_meta(
        MARKER,
        &serde_json::to_vec(&finished).expect("a marker serializes"),
    )?;
    target.flush()?;
    Ok(Migrated {
        from: from.display().to_string(),
        resumed,
        feed_head: source.feed_head()?,
        census,
        photos,
        thumbnails,
        photos_moved: target_blobs.is_some(),
        documents_verified: documents_verified as u64,
        signing_key_file: None,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// Whether the target may take this migration: `Ok(true)` when it resumes one that stopped.
fn admit(target: &dyn Store, marker: &Marker, options: Options) -> Result<bool, MigrateError> {
    let earlier: Option<Marker> = match target.get_meta(MARKER)? {
        Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            MigrateError::Refused(format!("the target's migration marker does not read: {e}"))
        })?),
        None => None,
    };
    if let Some(earlier) = earlier {
        if let Some(at) = earlier.finished_at_ms {
            return Err(MigrateError::Refused(format!(
                "the target already holds a finished migration of {} (finished at {at} ms); \
                 nothing was written",
                earlier.from
            )));
        }
        let same = earlier.from == marker.from
            && earlier.feed_head == marker.feed_head
            && earlier.documents == marker.documents;
        if same {
            return Ok(true);
        }
        return Err(MigrateError::Refused(format!(
            "a migration of {} (feed head {}, {} documents) into the target began and did not \
             finish, and the source is now {} (feed head {}, {} documents): drop and create the \
             target database again, then migrate again",
            earlier.from,
            earlier.feed_head,
            earlier.documents,
            marker.from,
            marker.feed_head,
            marker.documents
        )));
    }
    let documents = target.all_documents()?.len();
    let head = target.feed_head()?;
    if documents > 0 || head > 0 {
        return Err(MigrateError::Refused(format!(
            "the target database already holds {documents} documents (feed head {head}); a \
             district migrates into an empty database"
        )));
    }
    let held = [
        ("accounts", target.list_users()?.len()),
        ("device bindings", target.list_devices()?.len()),
        ("divisions", target.list_divisions()?.len()),
        ("assets", target.list_assets()?.len()),
        ("settings", target.list_meta("")?.len()),
    ];
    let held: Vec<String> = held
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    if !held.is_empty() && !options.into_existing {
        return Err(MigrateError::Refused(format!(
            "the target database is not empty ({}); nothing was written. Migrate into a new \
             database, or add --into-existing to let the district's records replace those of \
             the same name",
            held.join(", ")
        )));
    }
    Ok(false)
}

/// Accounts, bindings, sessions, reference data and settings, each written as it is.
fn move_records(source: &SledStore, target: &dyn Store) -> Result<(), MigrateError> {
    for user in source.list_users()? {
        match target.get_user(&user.user.id)? {
            Some(_) => target.update_user(&user)?,
            None => target.create_user(&user)?,
        }
    }
    for device in source.list_devices()? {
        target.put_device(&device)?;
    }
    for token in source.list_refresh_tokens()? {
        target.put_refresh_token(&token)?;
    }
    for division in source.list_divisions()? {
        target.put_division(&division)?;
    }
    for asset in source.list_assets()? {
        target.put_asset(&asset)?;
    }
    for (key, value) in source.list_meta("")? {
        if key != MARKER {
            target.put_meta(&key, &value)?;
        }
    }
    Ok(())
}

/// Every document with its audit, in feed order, each at the position it had.
fn move_documents(source: &SledStore, target: &dyn Store) -> Result<(), MigrateError> {
    let mut feed = Vec::new();
    for meta in source.all_documents()? {
        let seq = source.document_seq(&meta.id)?.ok_or_else(|| {
            MigrateError::Refused(format!("document {} has no feed position", meta.id))
        })?;
        feed.push((seq, meta.id));
    }
    feed.sort();
    for (seq, id) in feed {
        let head = target.feed_head()?;
        if seq <= head {
            // Placed by the run that stopped: kept if it is there, at its position.
            if target.document_seq(&id)? == Some(seq) {
                continue;
            }
            return Err(MigrateError::Refused(format!(
                "the target's feed stands at {head}, past document {id}'s position {seq}, \
                 which it does not hold there: drop and create the target database again, \
                 then migrate again"
            )));
        }
        let stored = source
            .document(&id)?
            .ok_or_else(|| MigrateError::Refused(format!("document {id} is listed but absent")))?;
        let audit = source.history(&id)?;
        target.advance_feed(seq - 1)?;
        let placed = target.save_document(&id, &stored.meta, &stored.bytes, &audit)?;
        if placed != seq {
            return Err(MigrateError::Differs(format!(
                "document {id} was placed at feed position {placed}, not {seq}"
            )));
        }
    }
    // The head may stand past the last document (a backup moves it on).
    let head = source.feed_head()?;
    if head > target.feed_head()? {
        target.advance_feed(head)?;
    }
    Ok(())
}

/// Every phone's device ledger, under the name its binding gives it.
fn move_ledger(source: &SledStore, target: &dyn Store) -> Result<(), MigrateError> {
    for device in source.list_devices()? {
        let key = device.ledger_key();
        let held: Vec<_> = source
            .device_docs(&key)?
            .into_iter()
            .map(|(id, doc)| (id, Some(doc)))
            .collect();
        for chunk in held.chunks(1000) {
            target.put_device_docs(&key, chunk)?;
        }
        if let Some(scope) = source.device_scope(&key)? {
            target.put_device_scope(&key, &scope)?;
        }
        if let Some(at) = source.device_synced(&key)? {
            target.put_device_synced(&key, at)?;
        }
        for (doc_id, state) in source.sync_states(&key)? {
            target.put_sync_state(&key, &doc_id, &state)?;
        }
    }
    Ok(())
}

/// Every complete photo with its receipt, and its thumbnail where one was made.
fn move_photos(from: &dyn BlobStore, to: &dyn BlobStore) -> Result<(u64, u64), MigrateError> {
    let (mut photos, mut thumbnails) = (0, 0);
    for sha256 in from.stored()? {
        let (Some(record), Some(bytes)) = (from.record(&sha256)?, from.read(&sha256)?) else {
            return Err(MigrateError::Refused(format!(
                "photo {sha256} is listed but its bytes or receipt are missing"
            )));
        };
        to.commit(&record, &bytes)?;
        photos += 1;
        if let Some(thumbnail) = from.thumbnail(&sha256)? {
            to.put_thumbnail(&sha256, &thumbnail)?;
            thumbnails += 1;
        }
    }
    Ok((photos, thumbnails))
}

fn differs(what: impl std::fmt::Display) -> MigrateError {
    MigrateError::Differs(what.to_string())
}

/// Sorted automerge heads of a stored document.
fn heads(bytes: &[u8], id: &str) -> Result<Vec<String>, MigrateError> {
    let mut doc =
        AutoCommit::load(bytes).map_err(|e| differs(format!("{id} does not load: {e}")))?;
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    Ok(heads)
}

/// Reads everything back from the target and compares it with the source and its census.
/// Returns the documents compared.
fn compare(
    source: &SledStore,
    target: &dyn Store,
    census: &Census,
    options: Options,
) -> Result<usize, MigrateError> {
    // Kinds of record: the source's listing must hold what its tables hold, and the target
    // every record of it, equal (and nothing more, unless it held records before).
    fn check<T: PartialEq + std::fmt::Debug, K: Ord + std::fmt::Display>(
        what: &str,
        census: u64,
        source: Vec<T>,
        target: Vec<T>,
        key: impl Fn(&T) -> K,
        exact: bool,
    ) -> Result<(), MigrateError> {
        if source.len() as u64 != census {
            return Err(MigrateError::Refused(format!(
                "the source lists {} {what} but its tables hold {census}",
                source.len()
            )));
        }
        let target: BTreeMap<K, T> = target.into_iter().map(|t| (key(&t), t)).collect();
        for record in &source {
            match target.get(&key(record)) {
                Some(found) if found == record => {}
                Some(_) => return Err(differs(format!("{what} {} differs", key(record)))),
                None => return Err(differs(format!("{what} {} is missing", key(record)))),
            }
        }
        if exact && target.len() != source.len() {
            return Err(differs(format!(
                "the target holds {} {what}, the source {}",
                target.len(),
                source.len()
            )));
        }
        Ok(())
    }
    let exact = !options.into_existing;
    check(
        "accounts",
        census.users,
        source.list_users()?,
        target.list_users()?,
        |u| u.user.id.clone(),
        exact,
    )?;
    check(
        "device bindings",
        census.devices,
        source.list_devices()?,
        target.list_devices()?,
        |d| d.ledger_key(),
        exact,
    )?;
    check(
        "refresh tokens",
        census.refresh_tokens,
        source.list_refresh_tokens()?,
        target.list_refresh_tokens()?,
        |t| t.token_hash.clone(),
        exact,
    )?;
    check(
        "divisions",
        census.divisions,
        source.list_divisions()?,
        target.list_divisions()?,
        |d| d.code.as_str().to_owned(),
        exact,
    )?;
    check(
        "assets",
        census.assets,
        source.list_assets()?,
        target.list_assets()?,
        |a| a.id.clone(),
        exact,
    )?;
    let settings = |store: &dyn Store| -> Result<Vec<(String, Vec<u8>)>, MigrateError> {
        Ok(store
            .list_meta("")?
            .into_iter()
            .filter(|(key, _)| key != MARKER)
            .collect())
    };
    check(
        "settings",
        census.settings,
        settings(source)?,
        settings(target)?,
        |(key, _)| key.clone(),
        exact,
    )?;

    // Documents: the same set, each at its position, with its heads and its audit.
    let head = (source.feed_head()?, target.feed_head()?);
    if head.0 != head.1 {
        return Err(differs(format!(
            "the feed head is {} in the target, {} in the source",
            head.1, head.0
        )));
    }
    let ids = |store: &dyn Store| -> Result<BTreeSet<String>, MigrateError> {
        Ok(store.all_documents()?.into_iter().map(|m| m.id).collect())
    };
    let (source_ids, target_ids) = (ids(source)?, ids(target)?);
    if source_ids.len() as u64 != census.documents {
        return Err(MigrateError::Refused(format!(
            "the source lists {} documents but its tables hold {}",
            source_ids.len(),
            census.documents
        )));
    }
    if source_ids != target_ids {
        let missing = source_ids.difference(&target_ids).next();
        let extra = target_ids.difference(&source_ids).next();
        return Err(differs(format!(
            "the documents differ (missing from the target: {missing:?}, not in the source: \
             {extra:?})"
        )));
    }
    let mut audit_entries = 0u64;
    for id in &source_ids {
        let (Some(from), Some(to)) = (source.document(id)?, target.document(id)?) else {
            return Err(differs(format!("document {id} does not read back")));
        };
        if heads(&from.bytes, id)? != heads(&to.bytes, id)? {
            return Err(differs(format!("document {id} has other heads")));
        }
        if from.meta != to.meta {
            return Err(differs(format!("document {id} has other routing facts")));
        }
        if source.document_seq(id)? != target.document_seq(id)? {
            return Err(differs(format!(
                "document {id} stands elsewhere in the feed"
            )));
        }
        let history: Vec<AuditEntry> = source.history(id)?;
        if history != target.history(id)? {
            return Err(differs(format!("document {id} has another audit")));
        }
        audit_entries += history.len() as u64;
    }
    if audit_entries != census.audit_entries {
        return Err(MigrateError::Refused(format!(
            "the source's documents have {audit_entries} audit entries but its audit table \
             holds {}",
            census.audit_entries
        )));
    }

    // Each phone's device ledger.
    let (mut held, mut scopes, mut synced, mut states) = (0u64, 0u64, 0u64, 0u64);
    for device in source.list_devices()? {
        let key = device.ledger_key();
        let docs = source.device_docs(&key)?;
        if docs != target.device_docs(&key)? {
            return Err(differs(format!("what device {key} holds differs")));
        }
        held += docs.len() as u64;
        let scope = source.device_scope(&key)?;
        if scope != target.device_scope(&key)? {
            return Err(differs(format!("device {key}'s scope differs")));
        }
        scopes += u64::from(scope.is_some());
        let at = source.device_synced(&key)?;
        if at != target.device_synced(&key)? {
            return Err(differs(format!("device {key}'s last sync differs")));
        }
        synced += u64::from(at.is_some());
        let kept = source.sync_states(&key)?;
        if kept != target.sync_states(&key)? {
            return Err(differs(format!("device {key}'s sync states differ")));
        }
        states += kept.len() as u64;
    }
    let ledger = (held, scopes, synced, states);
    let tables = (
        census.device_docs,
        census.device_scopes,
        census.device_synced,
        census.sync_states,
    );
    if ledger != tables {
        return Err(MigrateError::Refused(format!(
            "the device ledgers of the signed-in devices hold {ledger:?} (documents held, \
             scopes, last syncs, sync states) but the source's tables hold {tables:?}: records \
             of devices without a binding would be left behind"
        )));
    }
    Ok(source_ids.len())
}

/// Every photo of the source is in the target with its receipt, its bytes matching its name,
/// and its thumbnail.
fn compare_photos(from: &dyn BlobStore, to: &dyn BlobStore) -> Result<(), MigrateError> {
    for sha256 in from.stored()? {
        if from.record(&sha256)? != to.record(&sha256)? {
            return Err(differs(format!("photo {sha256}'s receipt differs")));
        }
        // Read back whole: the store checks the bytes against their name.
        if to.read(&sha256)?.is_none() {
            return Err(differs(format!("photo {sha256} is missing")));
        }
        if let Some(thumbnail) = from.thumbnail(&sha256)? {
            if to.thumbnail(&sha256)?.as_deref() != Some(thumbnail.as_slice()) {
                return Err(differs(format!("photo {sha256}'s thumbnail differs")));
            }
        }
    }
    Ok(())
}

/// `--blobs` of `chiefsync migrate`: a bucket (files stay where they are without it).
pub fn parse_bucket(value: &str) -> Result<crate::blobs::BlobLocation, String> {
    match crate::blobs::BlobLocation::parse(value)? {
        crate::blobs::BlobLocation::Files => Err(
            "photos in files stay in DIR/blobs: leave --blobs out, or name a bucket \
             (s3://bucket[/prefix]?endpoint=…)"
                .into(),
        ),
        bucket => Ok(bucket),
    }
}

#[cfg(test)]
mod tests;
