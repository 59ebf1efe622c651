//! The PostgreSQL schema, created and upgraded by numbered migrations when a server starts.
//!
//! Each migration runs once, in its own transaction, under a transaction-scoped advisory lock:
//! servers starting together on one database apply it once between them, and a start that
//! finds every migration applied changes nothing. `schema_migrations` records what was applied.
//!
//! Keys are `text COLLATE "C"`, so listings come in the byte order of their ids, as the sled
//! store lists them, whatever the database's locale.

use tokio_postgres::Client;

/// The advisory lock migrations run under (two-key form; the one-key form is the feed's).
const MIGRATION_LOCK: (i32, i32) = (0x4353_4403, 0);

/// The migrations in order; the number of each is its place in this list, from 1.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: everything the server keeps.
    r#"
    CREATE TABLE users (
        id text COLLATE "C" PRIMARY KEY,
        -- The lower-cased username: usernames are unique without regard to case.
        username_key text COLLATE "C" NOT NULL CONSTRAINT users_username_key UNIQUE,
        -- The department of an active handler, NULL for everyone else: which departments
        -- exist for an assignment is read from here.
        department text,
        record jsonb NOT NULL
    );
    CREATE INDEX users_department ON users (department) WHERE department IS NOT NULL;
    CREATE TABLE devices (
        user_id text COLLATE "C" NOT NULL,
        device_id text COLLATE "C" NOT NULL,
        record jsonb NOT NULL,
        PRIMARY KEY (user_id, device_id)
    );
    CREATE TABLE refresh_tokens (
        token_hash text COLLATE "C" PRIMARY KEY,
        record jsonb NOT NULL
    );
    CREATE TABLE divisions (
        code text COLLATE "C" PRIMARY KEY,
        record jsonb NOT NULL
    );
    CREATE TABLE assets (
        id text COLLATE "C" PRIMARY KEY,
        record jsonb NOT NULL
    );
    CREATE TABLE meta (
        key text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL
    );

    -- The change feed's positions. Drawn by feed_position() only.
    CREATE SEQUENCE feed_seq AS bigint MINVALUE 1;
    -- Documents: routing facts, the full automerge save with its CRC-32, and the feed
    -- position of the latest save.
    CREATE TABLE documents (
        id text COLLATE "C" PRIMARY KEY,
        meta jsonb NOT NULL,
        bytes bytea NOT NULL,
        crc32 bigint NOT NULL,
        seq bigint NOT NULL CONSTRAINT documents_seq UNIQUE
    );
    CREATE TABLE audit (
        doc_id text COLLATE "C" NOT NULL,
        change text COLLATE "C" NOT NULL,
        received_at_ms bigint NOT NULL,
        entry jsonb NOT NULL,
        PRIMARY KEY (doc_id, change)
    );
    CREATE TABLE device_docs (
        device text COLLATE "C" NOT NULL,
        doc_id text COLLATE "C" NOT NULL,
        held jsonb NOT NULL,
        PRIMARY KEY (device, doc_id)
    );
    CREATE TABLE device_scope (
        device text COLLATE "C" PRIMARY KEY,
        scope text NOT NULL
    );
    CREATE TABLE device_synced (
        device text COLLATE "C" PRIMARY KEY,
        at_ms bigint NOT NULL
    );
    CREATE TABLE sync_states (
        device text COLLATE "C" NOT NULL,
        doc_id text COLLATE "C" NOT NULL,
        state bytea NOT NULL,
        PRIMARY KEY (device, doc_id)
    );

    -- The next feed position, for the calling transaction, which holds a shared advisory lock
    -- keyed by that position (the one-bigint form; nothing else in this database uses it)
    -- until it commits or aborts. Drawing the position and taking its lock happen under the
    -- feed's gate (shared here, exclusive in feed_settled), so no reader finds a position
    -- drawn but not yet locked. Saves do not wait for each other.
    CREATE FUNCTION feed_position() RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        position bigint;
    BEGIN
        PERFORM pg_advisory_lock_shared(1129530370, 0);
        BEGIN
            position := nextval('feed_seq');
            PERFORM pg_advisory_xact_lock_shared(position);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_advisory_unlock_shared(1129530370, 0);
            RAISE;
        END;
        PERFORM pg_advisory_unlock_shared(1129530370, 0);
        RETURN position;
    END
    $$;

    -- The settled head of the feed: the highest position below which every save drawn in
    -- this database has committed or aborted (a position's lock is released only after its
    -- save is visible). A save that drew a lower position but commits later holds the head
    -- below it, so a reader's cursor never passes a save still under way.
    CREATE FUNCTION feed_settled() RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        running bigint;
        drawn bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock(1129530370, 0);
        SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO drawn FROM feed_seq;
        -- Only shared one-key locks, as feed_position takes them; and never past the last
        -- position drawn, whatever else holds such a lock.
        SELECT min((classid::bigint << 32) | objid::bigint) INTO running
        FROM pg_locks
        WHERE locktype = 'advisory' AND objsubid = 1 AND mode = 'ShareLock'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
        IF running IS NOT NULL THEN
            RETURN least(running - 1, drawn);
        END IF;
        RETURN drawn;
    END
    $$;
    "#,
    // 2: what the servers on one database share besides records (`storage::Shared`).
    r#"
    -- Failed sign-ins: one row per failure and key (username from an address, the address,
    -- the username), tagged with the username it was made for.
    CREATE TABLE login_failures (
        key text COLLATE "C" NOT NULL,
        tag text COLLATE "C" NOT NULL,
        at_ms bigint NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures (key, at_ms);
    CREATE INDEX login_failures_at ON login_failures (at_ms);
    -- Photo bytes each user sent on a day (China's calendar day, numbered from 1970).
    CREATE TABLE upload_bytes (
        user_id text COLLATE "C" NOT NULL,
        day bigint NOT NULL,
        bytes bigint NOT NULL,
        PRIMARY KEY (user_id, day)
    );
    "#,
    // 3: documents kept as a snapshot (`documents.bytes`, as before) plus the incremental saves
    // made since (`storage::chunks`). A database made before reads as it is: no document has
    // incremental saves yet.
    r#"
    CREATE TABLE IF NOT EXISTS document_changes (
        doc_id text COLLATE "C" NOT NULL,
        -- The feed position of the save that wrote it: save order.
        seq bigint NOT NULL,
        bytes bytea NOT NULL,
        crc32 bigint NOT NULL,
        PRIMARY KEY (doc_id, seq)
    );
    -- A snapshot of more than a few hundred bytes lives out of the row (automerge compresses
    -- it already), so a save that adds an incremental save writes the row's facts and position
    -- anew without copying the snapshot; the routing facts stay in the row, where the feed and
    -- the listings read them. Rows written from now on are kept so.
    ALTER TABLE documents ALTER COLUMN bytes SET STORAGE EXTERNAL;
    ALTER TABLE documents ALTER COLUMN meta SET STORAGE MAIN;
    ALTER TABLE documents SET (toast_tuple_target = 256);
    "#,
    // 4: statistics facts kept between starts (`storage::facts`).
    r#"
    -- Which facts are stored (their format and what they were judged with) and the feed
    -- position every document saved at or below has its fact stored. One row, id 1.
    CREATE TABLE stats_facts_mark (
        id integer PRIMARY KEY CHECK (id = 1),
        generation text COLLATE "C" NOT NULL,
        cursor bigint NOT NULL
    );
    -- Each document's fact, with the feed head it was worked out at.
    CREATE TABLE stats_facts (
        doc_id text COLLATE "C" PRIMARY KEY,
        generation text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        fact jsonb NOT NULL
    );
    CREATE INDEX stats_facts_seq ON stats_facts (generation, seq);
    "#,
    // 5: a sequence the durability barrier writes (`documents::DURABLE_NOW`): a commit waits
    // for the disk only when its transaction wrote to the log.
    r#"
    CREATE SEQUENCE durable_mark AS bigint;
    "#,
    // 6: the version of each table of reference data, so each server keeps the lists and knows
    // with one read whether they changed (`reference`).
    r#"
    CREATE TABLE reference_versions (
        name text COLLATE "C" PRIMARY KEY,
        version bigint NOT NULL
    );
    INSERT INTO reference_versions (name, version)
        VALUES ('users', 1), ('divisions', 1), ('assets', 1);
    -- Moves the written table's version on, in the writing transaction, before its rows are
    -- touched: the new version is seen exactly when the write is.
    CREATE FUNCTION reference_written() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE reference_versions SET version = version + 1 WHERE name = TG_TABLE_NAME;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER users_written BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION reference_written();
    CREATE TRIGGER divisions_written BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON divisions
        FOR EACH STATEMENT EXECUTE FUNCTION reference_written();
    CREATE TRIGGER assets_written BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON assets
        FOR EACH STATEMENT EXECUTE FUNCTION reference_written();
    "#,
    // 7: more of what the servers share (`storage::Shared`): counted events, short-lived
    // records, and the hold on every server's saves (`Store::hold_saves`).
    r#"
    -- Events counted in a window under a key (the public channel's rates): the times still
    -- in the window, at most the limit of them.
    CREATE TABLE shared_events (
        key text COLLATE "C" PRIMARY KEY,
        times bigint[] NOT NULL,
        expires_ms bigint NOT NULL
    );
    CREATE INDEX shared_events_expiry ON shared_events (expires_ms);
    -- Short-lived records (the public's challenges and tickets), written by version.
    CREATE TABLE shared_records (
        key text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL,
        version bigint NOT NULL,
        expires_ms bigint NOT NULL
    );
    CREATE INDEX shared_records_expiry ON shared_records (expires_ms);

    -- As before, and first a shared hold on every server's saves (two-key form, class
    -- 0x43534405), kept to commit: `hold_saves` takes it exclusively, so it waits for every
    -- save past this point to commit and holds back the rest until it lets go.
    CREATE OR REPLACE FUNCTION feed_position() RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        position bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(1129530373, 0);
        PERFORM pg_advisory_lock_shared(1129530370, 0);
        BEGIN
            position := nextval('feed_seq');
            PERFORM pg_advisory_xact_lock_shared(position);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_advisory_unlock_shared(1129530370, 0);
            RAISE;
        END;
        PERFORM pg_advisory_unlock_shared(1129530370, 0);
        RETURN position;
    END
    $$;
    "#,
    // 8: a document's save in one statement (`documents::store_version`), its own transaction,
    // instead of nine, each a round trip.
    r#"
    -- Stores a document's new version at the next feed position and returns the position,
    -- with its audit entries; committed without waiting for the disk (durable at the hub's
    -- barrier, once per request). One save of a document at a time on every server: the
    -- advisory lock `(lock_class, hashtext(doc))` is held to commit. With `read_check`, the
    -- version the caller's merge was made from (`read_seq`, NULL for none) must still be the
    -- stored one (SQLSTATE CS001 otherwise, nothing written). A `snapshot` replaces the
    -- stored one and removes the incremental saves at or below `covers` (none when NULL);
    -- without one, `incremental` (when not NULL) is added and the row's facts and position
    -- move (SQLSTATE CS002 when the row is gone).
    CREATE FUNCTION save_version(
        lock_class integer, doc text, facts jsonb, read_check boolean, read_seq bigint,
        snapshot bytea, snapshot_crc32 bigint, covers bigint,
        incremental bytea, incremental_crc32 bigint,
        audit_docs text[], audit_changes text[], audit_received bigint[], audit_entries jsonb[]
    ) RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        stored bigint;
        position bigint;
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        PERFORM pg_advisory_xact_lock(lock_class, hashtext(doc));
        IF read_check THEN
            SELECT seq INTO stored FROM documents WHERE id = doc;
            IF stored IS DISTINCT FROM read_seq THEN
                RAISE EXCEPTION 'document % was saved by another server meanwhile', doc
                    USING ERRCODE = 'CS001';
            END IF;
        END IF;
        -- Its lock is held to commit: the feed's head stays below it until then.
        position := feed_position();
        IF snapshot IS NOT NULL THEN
            INSERT INTO documents (id, meta, bytes, crc32, seq)
            VALUES (doc, facts, snapshot, snapshot_crc32, position)
            ON CONFLICT (id) DO UPDATE SET meta = EXCLUDED.meta, bytes = EXCLUDED.bytes,
                crc32 = EXCLUDED.crc32, seq = EXCLUDED.seq;
            IF covers IS NOT NULL THEN
                DELETE FROM document_changes WHERE doc_id = doc AND seq <= covers;
            END IF;
        ELSE
            -- The row's snapshot stays as it is (kept out of the row, unwritten); only the
            -- facts and the position change.
            UPDATE documents SET meta = facts, seq = position WHERE id = doc;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'document % is gone', doc USING ERRCODE = 'CS002';
            END IF;
            IF incremental IS NOT NULL THEN
                INSERT INTO document_changes (doc_id, seq, bytes, crc32)
                VALUES (doc, position, incremental, incremental_crc32);
            END IF;
        END IF;
        IF cardinality(audit_changes) > 0 THEN
            INSERT INTO audit (doc_id, change, received_at_ms, entry)
            SELECT * FROM unnest(audit_docs, audit_changes, audit_received, audit_entries)
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN position;
    END
    $$;
    "#,
];

/// Applies every migration not yet applied; returns the schema version now in force.
pub(super) async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .or_else(|err| {
            // Two servers creating the table at once: the loser sees a duplicate, of the
            // catalogue's row, of the table's row type ("type … already exists") or of the
            // table itself ("relation … already exists", once the winner has committed).
            use tokio_postgres::error::SqlState;
            if [
                SqlState::UNIQUE_VIOLATION,
                SqlState::DUPLICATE_OBJECT,
                SqlState::DUPLICATE_TABLE,
            ]
            .iter()
            .any(|code| err.code() == Some(code))
            {
                Ok(())
            } else {
                Err(err)
            }
        })?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(index + 1).expect("few migrations");
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
        )
        .await?;
        let applied = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .await?
            .is_some();
        if !applied {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(MIGRATIONS.len())
}
