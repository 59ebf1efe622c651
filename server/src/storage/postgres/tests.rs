//! The PostgreSQL store through both conformance suites, and what only a database shared by
//! several servers must do: a feed read without holes while saves commit out of order, and
//! saves of one document serialized between servers.
//!
//! The database server is named by `CHIEFSYNC_TEST_POSTGRES` (a `postgres://` address of a
//! user that may create databases; `.ci/run` sets it). Each test creates a database of its own
//! and drops it afterwards. Without the variable, or with the server unreachable, each test
//! says `skipped:` and passes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sync_core::doc::DocKind;
use sync_core::hub::testing::doc_meta;
use sync_core::hub::DocumentStore;

use super::PostgresStore;
use crate::storage::conformance::Harness;
use crate::storage::Store;

/// The environment variable naming the test database server.
pub(crate) const TEST_DATABASE: &str = "CHIEFSYNC_TEST_POSTGRES";

/// A connection of the test's own, outside any store (to create databases, hold locks).
struct Session {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Session {
    fn connect(config: &tokio_postgres::Config) -> Result<Self, tokio_postgres::Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let client = runtime.block_on(async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Self { runtime, client })
    }

    fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn number(&self, sql: &str) -> i64 {
        self.runtime
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }
}

/// A database of the test's own on the test server, dropped with the harness.
pub(crate) struct PgHarness {
    admin: Session,
    config: tokio_postgres::Config,
    name: String,
}

/// A fresh [`PgHarness`], or `return` from the test (which passes) after saying why not.
macro_rules! pg_harness {
    () => {
        match $crate::storage::postgres::tests::PgHarness::new() {
            Some(harness) => harness,
            None => return,
        }
    };
}

impl PgHarness {
    pub(crate) fn new() -> Option<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let Some(url) = std::env::var(TEST_DATABASE)
            .ok()
            .filter(|url| !url.is_empty())
        else {
            println!("skipped: {TEST_DATABASE} is not set (a postgres:// address of a server)");
            return None;
        };
        let admin_config: tokio_postgres::Config = url
            .parse()
            .unwrap_or_else(|e| panic!("{TEST_DATABASE}: {e}"));
        let admin = match Session::connect(&admin_config) {
            Ok(admin) => admin,
            Err(err) => {
                println!("skipped: PostgreSQL at {TEST_DATABASE} is not reachable: {err}");
                return None;
            }
        };
        let name = format!(
            "chiefsync_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        admin.execute(&format!("CREATE DATABASE {name}"));
        let mut config = admin_config;
        config.dbname(&name);
        Some(Self {
            admin,
            config,
            name,
        })
    }

    fn store(&self) -> PostgresStore {
        PostgresStore::connect(self.config.clone()).expect("open the PostgreSQL store")
    }

    fn session(&self) -> Session {
        Session::connect(&self.config).expect("a session")
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        self.admin.execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Harness for PgHarness {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.store())
    }

    fn second_node(&self, _first: &Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(self.store())
    }
}

store_conformance_tests!(pg_harness!());

/// The sync hub's part of the store, through the suite every hub store passes. Reference data
/// goes in the way the administration writes it.
impl sync_core::hub::testing::Harness for PgHarness {
    type Store = Arc<dyn Store>;

    fn open(&self) -> Self::Store {
        Harness::open(self)
    }

    fn seed(&self, store: &Self::Store, reference: &sync_core::hub::testing::Reference) {
        for asset in &reference.assets {
            store.put_asset(asset).expect("asset");
        }
        let categories = serde_json::to_vec(&reference.categories).expect("categories");
        store
            .put_meta(crate::reference::CATEGORIES_KEY, &categories)
            .expect("categories");
        for user in &reference.users {
            store
                .create_user(&crate::storage::UserRecord {
                    user: user.clone(),
                    password_hash: None,
                    created_at_ms: 1,
                    updated_at_ms: 1,
                })
                .expect("user");
        }
    }
}

mod hub {
    sync_core::hub_store_conformance!(pg_harness!());
}

/// A claim on a device stands while the answer that made it runs, on another server too, and
/// not after that server stopped: the database ends it with the connection, so the phone the
/// stopped server was answering syncs through another at once.
#[test]
fn a_stopped_servers_claim_on_a_device_stands_no_more() {
    use sync_core::hub::DeviceLedger;
    let h = pg_harness!();
    let (here, elsewhere) = (h.store(), h.store());
    let answering = elsewhere.claim_device("u1/phone").unwrap();
    assert!(answering.is_some());
    assert!(here.claim_device("u1/phone").unwrap().is_none());
    assert!(here.claim_device("u2/phone").unwrap().is_some());

    // The other server is killed: its connections close.
    let killed = h.session().number(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
         WHERE locktype = 'advisory' AND classid = 1129530375
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    assert_eq!(killed, 1, "the claim is a lock held by one connection");
    let stopped = Instant::now();
    let claim = loop {
        if let Some(claim) = here.claim_device("u1/phone").unwrap() {
            break claim;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the stopped server's claim still stands"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(here.claim_device("u1/phone").unwrap().is_none());
    // The killed claim's letting go finds its connection gone and changes nothing.
    drop(answering);
    assert!(here.claim_device("u1/phone").unwrap().is_none());
    drop(claim);
    assert!(elsewhere.claim_device("u1/phone").unwrap().is_some());
}

fn save(store: &PostgresStore, id: &str, bytes: &[u8]) -> u64 {
    store
        .save_document(id, &doc_meta(id, DocKind::Patrol), bytes, &[])
        .expect("save")
}

fn ids(metas: Vec<sync_core::authz::DocMeta>) -> Vec<String> {
    metas.into_iter().map(|m| m.id).collect()
}

/// A save that drew position 2 commits after one that drew position 3. Meanwhile the feed's
/// head stays below 2, so a phone that syncs then and keeps the head as its cursor still
/// receives the document of position 2 once it commits: nothing is skipped, and the feed comes
/// in position order.
#[test]
fn the_feed_is_read_without_holes_when_saves_commit_out_of_order() {
    let h = pg_harness!();
    let store = Arc::new(h.store());
    assert_eq!(save(&store, "p1", b"first"), 1);

    // Another session holds p1's row, so the next save of p1 draws its position and waits.
    let blocker = h.session();
    blocker.execute("BEGIN; SELECT 1 FROM documents WHERE id = 'p1' FOR UPDATE");
    let late = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || save(&store, "p1", b"second"))
    };
    let watcher = h.session();
    let started = Instant::now();
    while watcher.number("SELECT last_value FROM feed_seq") < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no position drawn"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The later position commits first.
    assert_eq!(save(&store, "p2", b"third"), 3);
    assert!(store.document("p2").unwrap().is_some(), "committed");
    assert_eq!(
        watcher.number("SELECT max(seq) FROM documents"),
        3,
        "position 3 is visible while 2 is not: the trap is set"
    );
    let head = store.feed_head().unwrap();
    assert_eq!(head, 1, "the head stays below the save still running");
    let seen = ids(store.changed_since(0, head, &|_| true).unwrap());
    assert_eq!(seen, vec!["p1"], "p1 as first saved");

    blocker.execute("COMMIT");
    assert_eq!(late.join().unwrap(), 2);
    let head_after = store.feed_head().unwrap();
    assert_eq!(head_after, 3);
    assert_eq!(
        ids(store.changed_since(head, head_after, &|_| true).unwrap()),
        vec!["p1", "p2"],
        "the phone's next sync gets both, in position order"
    );
    assert_eq!(store.document("p1").unwrap().unwrap().bytes, b"second");
}

/// Two servers on one database save the same document at once: each save gets its own
/// position, and the document as stored is the save with the highest position (saves of one
/// document are serialized, so the stored version is always the one the feed names last).
#[test]
fn saves_of_one_document_are_serialized_between_servers() {
    let h = pg_harness!();
    let servers = [h.store(), h.store()];
    let saved: Vec<(u64, Vec<u8>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = &servers[t % 2];
                scope.spawn(move || {
                    (0..10)
                        .map(|n| {
                            let bytes = format!("thread {t} save {n}").into_bytes();
                            (save(store, "i1", &bytes), bytes)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("saver"))
            .collect()
    });
    let mut positions: Vec<u64> = saved.iter().map(|(seq, _)| *seq).collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());
    let last = saved.iter().max_by_key(|(seq, _)| *seq).expect("saves");
    for server in &servers {
        assert_eq!(server.document_seq("i1").unwrap(), Some(40));
        assert_eq!(server.document("i1").unwrap().unwrap().bytes, last.1);
        assert_eq!(server.feed_head().unwrap(), 40);
    }
}

/// Two servers starting on one new database create the schema once between them; a third
/// start finds it in place.
#[test]
fn the_schema_is_created_once_by_servers_starting_together() {
    let h = pg_harness!();
    let stores: Vec<PostgresStore> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..3).map(|_| scope.spawn(|| h.store())).collect();
        starts
            .into_iter()
            .map(|s| s.join().expect("start"))
            .collect()
    });
    drop(stores);
    let again = h.store();
    assert_eq!(save(&again, "p1", b"x"), 1);
    let session = h.session();
    // Each migration once.
    assert_eq!(
        session.number("SELECT count(*) FROM schema_migrations"),
        super::schema::MIGRATIONS.len() as i64
    );
}

/// A server that read a document before another server saved it cannot save its merge over
/// that save: the save is refused and nothing is written, and once it reads the document
/// again its save goes through.
#[test]
fn a_merge_is_not_saved_over_another_servers_save() {
    use sync_core::hub::{HubError, StoredVersion};
    let h = pg_harness!();
    let (a, b) = (h.store(), h.store());
    let merged = |store: &PostgresStore, id: &str, read: Option<StoredVersion>, bytes: &[u8]| {
        let meta = doc_meta(id, DocKind::Issue);
        store.save_merged(id, &meta, read, None, &mut || bytes.to_vec(), &[])
    };
    assert_eq!(save(&a, "i1", b"first"), 1);
    let read = a.document("i1").unwrap().expect("saved");
    assert_eq!(read.bytes, b"first");
    // Server b saves the document meanwhile (on another thread, as another process would).
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let its = b.document("i1").unwrap().expect("saved");
            assert_eq!(
                merged(&b, "i1", Some(its.version), b"second, from b").unwrap(),
                2
            );
        });
    });
    let refused = merged(&a, "i1", Some(read.version), b"first, merged on a");
    assert!(
        matches!(&refused, Err(HubError::SavedMeanwhile { id }) if id == "i1"),
        "{refused:?}"
    );
    let again = a.document("i1").unwrap().unwrap();
    assert_eq!(again.bytes, b"second, from b");
    assert_eq!(a.feed_head().unwrap(), 2);
    // Read again, merged again: saved.
    assert_eq!(
        merged(&a, "i1", Some(again.version), b"second, merged on a").unwrap(),
        3
    );
    // A document first read as absent and created elsewhere meanwhile is refused as well.
    assert!(a.document("i2").unwrap().is_none());
    std::thread::scope(|scope| {
        scope.spawn(|| assert_eq!(merged(&b, "i2", None, b"made on b").unwrap(), 4));
    });
    assert!(matches!(
        merged(&a, "i2", None, b"made on a"),
        Err(HubError::SavedMeanwhile { .. })
    ));
    assert_eq!(b.document("i2").unwrap().unwrap().bytes, b"made on b");
}

/// What one server counts, every server on the database sees: failed sign-ins and photo bytes
/// recorded through one store are read through another.
#[test]
fn counts_recorded_by_one_server_are_read_by_another() {
    use crate::storage::Shared;
    let h = pg_harness!();
    let (a, b) = (h.store(), h.store());
    for at in [1_000, 2_000, 3_000] {
        a.record_login_failure(&["pair 10.0.0.1 alice"], "alice", at, 0)
            .unwrap();
    }
    assert_eq!(
        b.login_failures(&["pair 10.0.0.1 alice"], 0).unwrap(),
        vec![vec![1_000, 2_000, 3_000]]
    );
    b.forgive_login_failures("pair 10.0.0.1 alice", None)
        .unwrap();
    assert_eq!(
        a.login_failures(&["pair 10.0.0.1 alice"], 0).unwrap(),
        vec![Vec::<i64>::new()]
    );
    a.charge_upload("u1", 7, 100, 1_000).unwrap();
    assert_eq!(b.charge_upload("u1", 7, 50, 1_000).unwrap(), Some(150));
    assert_eq!(a.uploaded("u1", 7).unwrap(), 150);
}

/// The job lock is PostgreSQL's, not the process's: while one server holds it another is
/// refused, and a server that dies holding it (its connection closes) holds nothing after.
#[test]
fn a_job_lock_is_held_across_servers_and_let_go_by_a_dead_one() {
    use crate::storage::Shared;
    let h = pg_harness!();
    let (a, b) = (h.store(), h.store());
    let mut b_meanwhile = None;
    assert!(a
        .exclusively("deadline job", &mut || {
            b_meanwhile = Some(b.exclusively("deadline job", &mut || {}).unwrap());
        })
        .unwrap());
    assert_eq!(b_meanwhile, Some(false));
    assert!(b.exclusively("deadline job", &mut || {}).unwrap());

    // A server takes the lock the way the store does, then dies: its connection closes.
    let dying = h.session();
    let taken = dying.number(&format!(
        "SELECT pg_try_advisory_lock({}, {})::int::bigint",
        super::shared::JOB_LOCK,
        super::shared::job_key("deadline job")
    ));
    assert_eq!(taken, 1);
    assert!(!a.exclusively("deadline job", &mut || {}).unwrap());
    drop(dying);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.exclusively("deadline job", &mut || {}).unwrap() {
        assert!(Instant::now() < deadline, "the dead server's lock stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A database made by servers from before documents kept incremental saves: the first server
/// of this version adds what is missing, and the documents read as they were stored, then
/// take incremental saves.
#[test]
fn a_database_made_before_incremental_saves_reads_as_it_is() {
    use crate::storage::conformance::{add_note, older_document};
    let h = pg_harness!();
    let old = h.session();
    old.execute(
        "CREATE TABLE schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    );
    for (index, sql) in super::schema::MIGRATIONS[..2].iter().enumerate() {
        old.execute(sql);
        old.execute(&format!(
            "INSERT INTO schema_migrations (version) VALUES ({})",
            index + 1
        ));
    }
    // A document as those servers stored it: the full save in its row.
    let mut doc = older_document();
    let saved = doc.save();
    let meta = serde_json::to_string(&doc_meta("p1", DocKind::Patrol))
        .unwrap()
        .replace('\'', "''");
    old.execute(&format!(
        "INSERT INTO documents (id, meta, bytes, crc32, seq)
         VALUES ('p1', '{meta}', '\\x{}', {}, nextval('feed_seq'))",
        hex::encode(&saved),
        crc32fast::hash(&saved)
    ));

    let store = h.store();
    assert_eq!(
        old.number("SELECT count(*) FROM schema_migrations"),
        super::schema::MIGRATIONS.len() as i64
    );
    let read = store.document("p1").unwrap().expect("the older document");
    assert_eq!(read.bytes, saved, "read as it is");
    assert_eq!(store.feed_head().unwrap(), 1);
    let added = add_note(&mut doc, 1);
    let meta = doc_meta("p1", DocKind::Patrol);
    assert_eq!(
        store
            .save_merged(
                "p1",
                &meta,
                Some(read.version),
                Some(&added),
                &mut || doc.save(),
                &[]
            )
            .unwrap(),
        2
    );
    let kept = store.document_footprint("p1").unwrap().unwrap();
    assert_eq!(
        (kept.snapshot_bytes, kept.incremental_saves),
        (saved.len(), 1)
    );
    let mut loaded =
        automerge::AutoCommit::load(&store.document("p1").unwrap().unwrap().bytes).unwrap();
    assert_eq!(loaded.get_heads(), doc.get_heads());
}

/// A stored incremental save whose bytes no longer match their checksum is reported as
/// damage, never loaded.
#[test]
fn a_damaged_incremental_save_is_reported() {
    use crate::storage::conformance::{add_note, older_document};
    let h = pg_harness!();
    let store = h.store();
    let meta = doc_meta("p1", DocKind::Patrol);
    let mut doc = older_document();
    store.save_document("p1", &meta, &doc.save(), &[]).unwrap();
    let read = store.document("p1").unwrap().map(|s| s.version);
    let added = add_note(&mut doc, 1);
    store
        .save_merged("p1", &meta, read, Some(&added), &mut || doc.save(), &[])
        .unwrap();
    assert_eq!(
        h.session()
            .number("SELECT count(*) FROM document_changes WHERE doc_id = 'p1'"),
        1
    );
    // Its size counts the snapshot and the incremental save, as a read joins them.
    let alone = store.document("p1").unwrap().unwrap().bytes.len();
    assert_eq!(store.document_sizes(&["p1"]).unwrap()["p1"], alone);
    // Read together, the snapshot and the incremental save come joined as read alone.
    let together = store.documents(&["p1"]).unwrap();
    let together = together[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(together.bytes, store.document("p1").unwrap().unwrap().bytes);
    store
        .save_document("p2", &doc_meta("p2", DocKind::Patrol), b"whole", &[])
        .unwrap();
    h.session().execute(
        "UPDATE document_changes SET bytes = set_byte(bytes, 20, get_byte(bytes, 20) # 16)
         WHERE doc_id = 'p1'",
    );
    let read = store.document("p1");
    assert!(
        matches!(&read, Err(sync_core::hub::HubError::Damaged { id, .. }) if id == "p1"),
        "{read:?}"
    );
    // Read with others, the damaged one is its own error; the others are read.
    let read = store.documents(&["p2", "p1", "nobody"]).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].as_ref().unwrap().as_ref().unwrap().bytes, b"whole");
    assert!(
        matches!(&read[1], Err(sync_core::hub::HubError::Damaged { id, .. }) if id == "p1"),
        "{:?}",
        read[1]
    );
    assert!(matches!(read[2], Ok(None)), "{:?}", read[2]);
}

/// Figures for BENCHMARKS.md: patrols synced minute by minute, stored the way the hub saves them
/// (`save_merged`: a snapshot plus incremental saves) beside the way it saved them before (the
/// full save every time, `save_document`). Prints records and bytes kept per document and what
/// the tables grew by (autovacuum off, so every row version written stays counted). Run with
/// `cargo test -p server --lib storage::postgres::tests::figures -- --ignored --nocapture`.
#[test]
#[ignore = "prints the storage figures of BENCHMARKS.md; run by hand"]
fn figures_rows_and_bytes_per_document() {
    use crate::storage::conformance::{minute_of_track, patrol_doc};
    use sync_core::doc::Record;
    const DOCS: usize = 50;
    const SYNCS: i64 = 40;
    for merged in [false, true] {
        let h = pg_harness!();
        let store = h.store();
        let session = h.session();
        session.execute(
            "ALTER TABLE documents SET (autovacuum_enabled = false);
             ALTER TABLE document_changes SET (autovacuum_enabled = false)",
        );
        let size = "SELECT (pg_total_relation_size('documents')
                        + pg_total_relation_size('document_changes'))::bigint";
        // The log records of this database only (others share the server's log).
        session.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
        session.execute("CREATE TEMP TABLE wal_from AS SELECT pg_current_wal_flush_lsn() AS lsn");
        let size_before = session.number(size);
        let mut full_bytes = 0usize;
        for d in 0..DOCS {
            let id = format!("p{d}");
            let meta = doc_meta(&id, DocKind::Patrol);
            let mut phone = patrol_doc();
            store.save_document(&id, &meta, &phone.save(), &[]).unwrap();
            for minute in 0..SYNCS {
                let stored = store.document(&id).unwrap().unwrap();
                let mut doc = automerge::AutoCommit::load(&stored.bytes).unwrap();
                let read = doc.get_heads();
                phone
                    .append_track(&minute_of_track(1440 + minute * 12, 12))
                    .unwrap();
                doc.merge(phone.am_mut()).unwrap();
                if merged {
                    let added = doc.save_after(&read);
                    store
                        .save_merged(
                            &id,
                            &meta,
                            Some(stored.version),
                            Some(&added),
                            &mut || doc.save(),
                            &[],
                        )
                        .unwrap();
                } else {
                    store.save_document(&id, &meta, &doc.save(), &[]).unwrap();
                }
            }
            full_bytes += phone.save().len();
        }
        store.flush().unwrap();
        let grown = session.number(size) - size_before;
        let wal = session.number(
            "SELECT coalesce(sum(record_length), 0)::bigint
             FROM pg_get_wal_records_info((SELECT lsn FROM wal_from), pg_current_wal_flush_lsn())
             WHERE block_ref LIKE '%/' || (SELECT oid FROM pg_database
                                           WHERE datname = current_database()) || '/%'",
        );
        let (mut records, mut kept) = (0, 0);
        for d in 0..DOCS {
            let footprint = store.document_footprint(&format!("p{d}")).unwrap().unwrap();
            records += footprint.records();
            kept += footprint.bytes();
        }
        let saves = DOCS as i64 * (SYNCS + 1);
        println!(
            "{}: {DOCS} patrols x {} saves; full save at the end {} B; records per document {:.1}; \
             bytes kept per document {}; tables grew {} B ({} B per save); log records of this database {} B per save",
            if merged { "snapshot + incremental" } else { "full save every time" },
            SYNCS + 1,
            full_bytes / DOCS,
            records as f64 / DOCS as f64,
            kept / DOCS,
            grown,
            grown / saves,
            wal / saves,
        );
    }
}

/// The barrier the hub calls before it answers (`HubStore::durable`) puts every save committed
/// before it on disk. Saves commit without waiting for the disk; PostgreSQL waits at a commit
/// only when its transaction wrote to the log itself, and a barrier that only took a
/// transaction id left answered saves in memory, lost when the database crashed.
#[test]
fn the_durability_barrier_flushes_the_log_past_every_earlier_save() {
    use sync_core::hub::HubStore;
    let harness = pg_harness!();
    let store = harness.store();
    let session = harness.session();
    let lsn = |which: &str| session.number(&format!("SELECT ({which}() - '0/0'::pg_lsn)::bigint"));
    for round in 0..20 {
        let id = format!("p-{round}");
        store
            .save_document(
                &id,
                &doc_meta(&id, DocKind::Patrol),
                b"a minute of track",
                &[],
            )
            .unwrap();
        let saved = lsn("pg_current_wal_insert_lsn");
        store.durable().unwrap();
        let on_disk = lsn("pg_current_wal_flush_lsn");
        assert!(
            on_disk >= saved,
            "round {round}: the log is on disk up to {on_disk}, the save reached {saved}"
        );
    }
}

/// Two servers on one database, each with its routing facts and reference lists kept in the
/// process: after both have read (so every cache is filled), what one saves or writes, the
/// other reads at its very next call, by every way of reading it, with no sync in between.
#[test]
fn each_server_reads_the_others_writes_through_its_caches_at_once() {
    use sync_core::model::{Asset, Division, DivisionCode, Geometry, System, User};

    let h = pg_harness!();
    let (a, b) = (h.store(), h.store());
    let every = |_: &sync_core::authz::DocMeta| true;
    assert_eq!(save(&a, "p1", b"one"), 1);
    let division = |c: &str, name: &str| Division {
        code: DivisionCode::new(c).expect("code"),
        name: name.into(),
        parent: None,
    };
    let river = |name: &str| Asset {
        id: "river-1".into(),
        system: System::River,
        name: name.into(),
        division: DivisionCode::new("370105014201").expect("code"),
        geometry: Geometry::LineString(vec![[116.95, 36.70], [116.96, 36.71]]),
    };
    let chief = |name: &str| crate::storage::UserRecord {
        user: User {
            id: "u-chief".into(),
            username: "chief".into(),
            display_name: name.into(),
            role: sync_core::model::Role::Admin,
            active: true,
        },
        password_hash: None,
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    a.put_division(&division("370105014201", "小寨村")).unwrap();
    a.put_asset(&river("小清河")).unwrap();
    a.create_user(&chief("张河长")).unwrap();

    // Both read everything once.
    for server in [&a, &b] {
        assert_eq!(server.feed_head().unwrap(), 1);
        assert_eq!(ids(server.all_documents().unwrap()), ["p1"]);
        assert_eq!(
            ids(server.documents_page(None, 10, &every).unwrap()),
            ["p1"]
        );
        assert_eq!(server.list_assets().unwrap(), [river("小清河")]);
        assert_eq!(server.list_divisions().unwrap().len(), 1);
        assert_eq!(server.list_users().unwrap(), [chief("张河长")]);
    }

    // Server a saves a new document and moves p1 to another owner.
    assert_eq!(save(&a, "p2", b"two"), 2);
    let mut moved = doc_meta("p1", DocKind::Issue);
    moved.owner = "someone else".into();
    assert_eq!(
        a.save_document("p1", &moved, b"one, moved", &[]).unwrap(),
        3
    );
    // Server b, asked for the feed up to a's head without reading its own head first.
    let feed = b.changed_since(1, 3, &every).unwrap();
    assert_eq!(ids(feed.clone()), ["p2", "p1"]);
    assert_eq!(
        feed[1], moved,
        "the facts as last saved, by the other server"
    );
    assert_eq!(b.feed_head().unwrap(), 3);
    // Every listing, each right after a save on a.
    assert_eq!(save(&a, "p3", b"three"), 4);
    let all = b.all_documents().unwrap();
    assert_eq!(ids(all.clone()), ["p1", "p2", "p3"]);
    assert_eq!(all[0], moved);
    assert_eq!(save(&a, "p4", b"four"), 5);
    assert_eq!(
        ids(b.documents_page(Some("p3"), 10, &every).unwrap()),
        ["p4"]
    );
    // And the other way round.
    assert_eq!(save(&b, "p5", b"five"), 6);
    assert_eq!(ids(a.changed_since(5, 6, &every).unwrap()), ["p5"]);
    assert_eq!(a.feed_head().unwrap(), 6);

    // Reference data written on a is read on b at once: one write, then an administrative
    // batch of several tables.
    a.put_asset(&river("小清河（改）")).unwrap();
    assert_eq!(b.list_assets().unwrap(), [river("小清河（改）")]);
    a.apply_admin_batch(&crate::storage::AdminBatch {
        divisions: vec![division("370105014000", "桑梓店街道")],
        changed_users: vec![chief("李河长")],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(b.list_divisions().unwrap().len(), 2);
    assert_eq!(b.list_users().unwrap(), [chief("李河长")]);
    // A batch refused (a username taken) changes nothing, on either server.
    let mut taken = chief("王河长");
    taken.user.id = "u-other".into();
    assert!(a
        .apply_admin_batch(&crate::storage::AdminBatch {
            assets: vec![river("不该存下")],
            new_users: vec![taken],
            ..Default::default()
        })
        .is_err());
    assert_eq!(b.list_assets().unwrap(), [river("小清河（改）")]);
    assert_eq!(a.list_users().unwrap(), [chief("李河长")]);
    // A write made outside any server (an operator's statement) is seen too.
    let operator = h.session();
    operator.execute("DELETE FROM assets");
    assert!(b.list_assets().unwrap().is_empty());
}

/// A server's kept routing facts never run ahead of the database: a crash of PostgreSQL can
/// take back a save the server had read (saves commit without waiting for the disk) and give
/// its feed position to a later save. Both ways a server learns of it are played here: the
/// feed's head found behind what it holds, and the database found started anew.
#[test]
fn kept_routing_facts_follow_the_database_when_a_crash_takes_saves_back() {
    let harness = pg_harness!();
    let (a, b) = (harness.store(), harness.store());
    let save = |store: &PostgresStore, id: &str| {
        store
            .save_document(id, &doc_meta(id, DocKind::Patrol), b"track", &[])
            .unwrap()
    };
    let listed = |store: &PostgresStore| {
        let mut ids: Vec<String> = store
            .all_documents()
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    };
    save(&b, "kept");
    let lost_at = save(&b, "lost");
    assert_eq!(listed(&a), ["kept", "lost"]);
    // What a crash does to a save that had not reached the disk: its row and its position
    // are gone.
    let session = harness.session();
    let take_back = |id: &str, at: u64| {
        session.execute(&format!(
            "DELETE FROM documents WHERE id = '{id}'; SELECT setval('feed_seq', {})",
            at - 1
        ));
    };
    take_back("lost", lost_at);
    assert_eq!(
        listed(&a),
        ["kept"],
        "the feed's head is behind the kept facts"
    );
    assert_eq!(a.feed_head().unwrap(), lost_at - 1);
    // The position is given again; the server lists the new save, not the lost one.
    assert_eq!(save(&b, "after"), lost_at);
    assert_eq!(listed(&a), ["after", "kept"]);
    assert_eq!(
        a.changed_since(lost_at - 1, lost_at, &|_| true)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        ["after"]
    );
    // Taken back and given again before the server reads: the head is where it was, so only
    // the database's new start tells (played here, as a restart cannot be on a shared
    // server).
    take_back("after", lost_at);
    assert_eq!(save(&b, "again"), lost_at);
    assert!(!a.same_database("a database started anew"));
    assert_eq!(listed(&a), ["again", "kept"]);
}

/// Saves in a thread of their own, each answering how long it took, so a test can give up on
/// one that never returns instead of waiting with it.
fn save_meanwhile(
    store: &Arc<PostgresStore>,
    id: &'static str,
) -> std::sync::mpsc::Receiver<(u64, Duration)> {
    let (answer, answered) = std::sync::mpsc::channel();
    let store = Arc::clone(store);
    std::thread::spawn(move || {
        let started = Instant::now();
        let seq = save(&store, id, b"meanwhile");
        let _ = answer.send((seq, started.elapsed()));
    });
    answered
}

/// A server stopped in the middle of a save (its transaction drew a feed position, so it holds
/// the save side of the hold, and then sends nothing) while photo collection on another server
/// asks for the hold. PostgreSQL queues every later save behind a waiting hold: before, the
/// hold waited for ever and every server's saves with it. Now another server's save goes
/// through while the hold waits, this server's own save waits only as long as the hold does,
/// and the hold gives up within its bound, saying why; once the stopped save ends, it is had.
#[test]
fn a_hold_waiting_on_a_stopped_save_neither_stops_saves_nor_waits_for_ever() {
    let h = pg_harness!();
    let collector = Arc::new(h.store());
    let other = Arc::new(h.store());
    save(&other, "p0", b"before");
    let stopped = h.session();
    stopped.execute("BEGIN; SELECT feed_position()");

    let (answer, hold_answered) = std::sync::mpsc::channel();
    {
        let collector = Arc::clone(&collector);
        std::thread::spawn(move || {
            let started = Instant::now();
            let held = collector.hold_saves().map(drop);
            let _ = answer.send((held, started.elapsed()));
        });
    }
    // The hold is waiting in the database by now.
    std::thread::sleep(Duration::from_millis(500));
    let elsewhere = save_meanwhile(&other, "p1");
    let here = save_meanwhile(&collector, "p2");

    let (_, took) = elsewhere
        .recv_timeout(Duration::from_secs(10))
        .expect("another server's save stopped behind a hold waiting on a stopped save");
    assert!(
        took < Duration::from_secs(3),
        "another server's save waited {took:?} behind the waiting hold"
    );
    let (held, waited) = hold_answered
        .recv_timeout(Duration::from_secs(30))
        .expect("hold_saves waited for ever on a save that never commits");
    match held {
        Err(crate::storage::StoreError::Unavailable(why)) => {
            assert!(why.contains("could not be held"), "{why}");
        }
        other => panic!("the hold was had over a save under way: {other:?}"),
    }
    assert!(
        waited < Duration::from_secs(10),
        "the hold gave up after {waited:?}"
    );
    let (_, here_took) = here
        .recv_timeout(Duration::from_secs(10))
        .expect("this server's save stayed at the gate after the hold gave up");
    assert!(here_took < Duration::from_secs(10), "{here_took:?}");
    println!(
        "another server's save: {took:?}; this server's save: {here_took:?}; \
         the hold gave up after {waited:?}"
    );

    // The stopped save ends; nothing of it was written, and the hold is had at once.
    stopped.execute("ROLLBACK");
    let held = collector
        .hold_saves()
        .expect("held once no save is under way");
    let late = save_meanwhile(&other, "p3");
    assert!(
        late.recv_timeout(Duration::from_millis(500)).is_err(),
        "a save went through while the hold was held"
    );
    drop(held);
    late.recv_timeout(Duration::from_secs(10))
        .expect("the save lands once the hold drops");
    assert_eq!(
        collector.feed_head().unwrap(),
        other.document_seq("p3").unwrap().unwrap()
    );
}

/// Every connection of the store has the database end a transaction left open with nothing
/// sent, and a database address that sets its own limit keeps it. Played with a short limit:
/// a server stopped in the middle of a save on such a connection no longer holds back the
/// feed's head or photo collection's hold once the database has ended it.
#[test]
fn a_save_left_open_by_a_stopped_server_is_ended_by_the_database() {
    let h = pg_harness!();
    let store = h.store();
    let limit: String = store
        .run(async {
            let client = store.client().await?;
            let row = client
                .query_one("SHOW idle_in_transaction_session_timeout", &[])
                .await
                .map_err(super::backend)?;
            Ok::<_, crate::storage::StoreError>(row.get(0))
        })
        .unwrap();
    assert_eq!(
        limit, "30s",
        "the store's connections keep open transactions for ever"
    );

    let mut config = h.config.clone();
    config.options("-c idle_in_transaction_session_timeout=1000");
    let frozen = PostgresStore::connect(config).expect("a store with its own limit");
    let other = Arc::new(h.store());
    save(&other, "p0", b"before");
    // Exactly what a save does up to its feed position, on one of the store's connections,
    // and then nothing (the server stopped).
    let stopped = frozen
        .run(async {
            let client = frozen.client().await?;
            client
                .batch_execute("BEGIN; SELECT feed_position()")
                .await
                .map_err(super::backend)?;
            Ok::<_, crate::storage::StoreError>(client)
        })
        .unwrap();
    let late = save_meanwhile(&other, "p1");
    let (seq, _) = late
        .recv_timeout(Duration::from_secs(10))
        .expect("another server's save");
    assert_eq!(
        other.feed_head().unwrap(),
        1,
        "the head stays below the open save"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        match store.hold_saves() {
            Ok(held) => break held,
            Err(err) => assert!(
                Instant::now() < deadline,
                "the stopped save still holds the hold: {err}"
            ),
        }
    };
    drop(held);
    assert_eq!(
        other.feed_head().unwrap(),
        seq,
        "the head moved past the ended save"
    );
    drop(stopped);
}
