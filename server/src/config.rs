//! The command line of the `chiefsync` binary. Every flag can also be set through an environment
//! variable (`CHIEFSYNC_…`), which is how containers and service managers configure it.
//!
//! This module only parses; it turns the flags into [`Settings`] and does no I/O.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::settings::WorkflowSettings;
use crate::state::Settings;

/// ChiefSync server: patrols and problem rectification for river, forest and field chiefs.
#[derive(Debug, Parser)]
#[command(name = "chiefsync", version)]
pub struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "CHIEFSYNC_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "HOST:PORT"
    )]
    pub addr: String,

    /// Directory for the database and the generated token signing key. (Accepted after a
    /// subcommand too: `chiefsync restore --from B --data-dir NEW`.)
    #[arg(
        long,
        global = true,
        alias = "data",
        env = "CHIEFSYNC_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Keep accounts, documents and the change feed in this PostgreSQL database
    /// (`postgres://user:password@host:port/database`) instead of sled under DIR; several
    /// servers may share one. Photos and the signing key stay in DIR.
    #[arg(long, env = "CHIEFSYNC_DATABASE", hide_env_values = true, value_parser = parse_database, value_name = "URL")]
    pub database: Option<String>,

    /// Lifetime of access tokens, seconds.
    #[arg(long, env = "CHIEFSYNC_ACCESS_TTL_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub access_ttl_secs: u64,

    /// Lifetime of refresh tokens, seconds (default 30 days).
    #[arg(long, env = "CHIEFSYNC_REFRESH_TTL_SECS", default_value_t = 30 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub refresh_ttl_secs: u64,

    /// Secret (at least 32 bytes) that signs access tokens. When absent, a random key is
    /// generated once and kept in DIR/jwt-signing.key (mode 0600), so tokens survive restarts.
    #[arg(
        long,
        env = "CHIEFSYNC_SIGNING_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub signing_key: Option<String>,

    /// Seed the Tianqiao demo (divisions, rivers, forests, farmland, demo accounts with password
    /// `demo`) on first start; later starts seed nothing.
    #[arg(long, env = "CHIEFSYNC_DEMO")]
    pub demo: bool,

    /// HTTP worker threads (default: one per CPU).
    #[arg(long, env = "CHIEFSYNC_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Log format on stderr. The level is set with RUST_LOG (default `info,automerge=warn`).
    #[arg(long, env = "CHIEFSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Hours after a missed rectification deadline before the deadline job escalates (督办).
    #[arg(
        long,
        env = "CHIEFSYNC_OVERDUE_GRACE_HOURS",
        default_value_t = 0,
        value_name = "HOURS"
    )]
    pub overdue_grace_hours: u32,

    /// Seconds between runs of the deadline job.
    #[arg(long, env = "CHIEFSYNC_DEADLINE_CHECK_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..), value_name = "SECS")]
    pub deadline_check_secs: u64,

    /// Open issues of the same category closer than this many metres are possible duplicates.
    #[arg(
        long,
        env = "CHIEFSYNC_DUPLICATE_RADIUS_M",
        default_value_t = 50.0,
        value_name = "METRES"
    )]
    pub duplicate_radius_m: f64,

    /// Days after which a photo upload left unfinished is removed (default 7).
    #[arg(long, env = "CHIEFSYNC_ABANDONED_UPLOAD_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..), value_name = "DAYS")]
    pub abandoned_upload_days: u32,

    /// Largest photo accepted, bytes (default 8 MiB).
    #[arg(long, env = "CHIEFSYNC_MAX_PHOTO_BYTES", default_value_t = crate::blobs::DEFAULT_MAX_PHOTO_BYTES, value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_photo_bytes: u64,

    /// Photo bytes each user may upload per day (China's calendar day, default 256 MiB); beyond
    /// that uploads are answered 429 until the next day.
    #[arg(long, env = "CHIEFSYNC_PHOTO_BYTES_PER_USER_PER_DAY", default_value_t = crate::photos::DEFAULT_DAILY_PHOTO_BYTES, value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub photo_bytes_per_user_per_day: u64,

    /// Days a stored photo may wait for a record to reference it before it is removed
    /// (default 7).
    #[arg(long, env = "CHIEFSYNC_UNREFERENCED_PHOTO_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..), value_name = "DAYS")]
    pub unreferenced_photo_days: u32,

    /// Sync and photo upload requests served at once; beyond that the server answers 503 with
    /// Retry-After and phones come back later.
    #[arg(long, env = "CHIEFSYNC_MAX_IN_FLIGHT", default_value_t = crate::shed::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), value_name = "N")]
    pub max_in_flight: usize,

    /// Of those, at most this many for one user; beyond that the user's next one is answered
    /// 503 with Retry-After.
    #[arg(long, env = "CHIEFSYNC_MAX_IN_FLIGHT_PER_USER", default_value_t = crate::shed::DEFAULT_MAX_IN_FLIGHT_PER_USER, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), value_name = "N")]
    pub max_in_flight_per_user: usize,

    /// Seconds a request body may take before it must arrive at --body-min-rate.
    #[arg(long, env = "CHIEFSYNC_BODY_GRACE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), value_name = "SECS")]
    pub body_grace_secs: u64,

    /// Bytes per second a request body must average after the grace; a slower one ends its
    /// request with 408 and a closed connection.
    #[arg(long, env = "CHIEFSYNC_BODY_MIN_RATE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES_PER_SEC")]
    pub body_min_rate: u64,

    /// Threads that check passwords; sign-ins beyond them wait in a short queue, or get 503.
    #[arg(long, env = "CHIEFSYNC_PASSWORD_THREADS", default_value_t = crate::auth::password::DEFAULT_PASSWORD_THREADS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), value_name = "N")]
    pub password_threads: usize,

    /// Basemap of the desk's maps: an XYZ tile URL template with `{z}`, `{x}`, `{y}` (and
    /// optionally `{s}` for subdomains), e.g. 天地图 with its key. Without it the maps draw the
    /// rivers, forests, farmland and issues on a plain background.
    #[arg(long, env = "CHIEFSYNC_TILE_URL", value_parser = crate::desk::parse_tile_url, value_name = "URL")]
    pub tile_url: Option<String>,

    /// Attribution shown in the corner of the map for the basemap (e.g. `天地图`).
    #[arg(
        long,
        env = "CHIEFSYNC_TILE_ATTRIBUTION",
        default_value = "",
        value_name = "TEXT"
    )]
    pub tile_attribution: String,

    /// A local basemap for office networks without the internet: a PMTiles archive of raster
    /// tiles (PNG, JPEG or WebP), served at `/tiles/{z}/{x}/{y}` and used by the desk's maps
    /// when no `--tile-url` is given. Checked at start-up.
    #[arg(long, env = "CHIEFSYNC_TILES", value_name = "FILE")]
    pub tiles: Option<std::path::PathBuf>,

    /// Metres between an after-rectification photo and the nearest before photo beyond which
    /// the issue page warns that it was taken elsewhere.
    #[arg(long, env = "CHIEFSYNC_PHOTO_PAIR_WARN_M", default_value_t = crate::desk::DEFAULT_PAIR_WARN_M, value_name = "METRES")]
    pub photo_pair_warn_m: f64,

    /// Where photos are kept: files under the data directory (the default), or an S3-compatible
    /// bucket shared by every server of a cluster, `s3://BUCKET[/PREFIX]?endpoint=URL` (also
    /// `region=…`; `skip_signature=true` for a store with anonymous access). Credentials come
    /// from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN).
    #[arg(long, env = "CHIEFSYNC_BLOBS", value_parser = crate::blobs::BlobLocation::parse, value_name = "URL")]
    pub blobs: Option<crate::blobs::BlobLocation>,

    /// A reverse proxy in front of the server (repeat the flag, or separate addresses with
    /// commas in the variable): for requests from it, the client is the last address in
    /// `X-Forwarded-For` that is not a trusted proxy, and sign-in throttling and the public
    /// channel's limits count that client. Without it every client behind a proxy shares the
    /// proxy's address. Name only proxies that set the header themselves.
    #[arg(
        long = "trusted-proxy",
        env = "CHIEFSYNC_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "IP"
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What the server logs unless `RUST_LOG` says otherwise: its own information and above, and
/// only warnings from automerge. Automerge opens an information-level span for every column of
/// every change it parses; none of them is ever shown, but a subscriber that lets them through
/// formats their fields all the same, a few per cent of the server's work on a busy sync.
pub const DEFAULT_LOG_FILTER: &str = "info,automerge=warn";

/// Sets up the server's log on standard error in `format`, filtered by `RUST_LOG` or else by
/// [`DEFAULT_LOG_FILTER`].
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an administrator account and exit. The password is read from the environment
    /// variable CHIEFSYNC_ADMIN_PASSWORD, or else from the first line of standard input; it
    /// must have at least 8 characters.
    CreateAdmin {
        /// Login name of the new administrator.
        #[arg(long, env = "CHIEFSYNC_ADMIN_USERNAME")]
        username: String,
        /// Name shown in the dashboard (default: the username).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Check every stored document against its checksum and load it; print the damaged ones
    /// as JSON and exit with status 1 if there are any. Run it with the server stopped.
    Verify,
    /// Take a consistent copy of the server over --data-dir (documents and their change feed,
    /// accounts and sessions, reference data, photos, the generated signing key) into DIR. A
    /// running server takes it itself, without stopping; a stopped one is copied directly.
    Backup {
        /// New or empty directory for the backup, outside the data directory (ideally on
        /// another disk or machine).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Check a backup against its manifest and restore it into --data-dir, which must be new
    /// or empty; then start the server on that directory.
    Restore {
        /// Directory of a backup taken by `chiefsync backup`.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The `manifest_sha256` that `chiefsync backup` printed (and the server logged): only
        /// that backup is restored, not one written by whoever could reach the backup's disk.
        #[arg(
            long,
            value_name = "SHA256",
            required_unless_present = "trust_manifest"
        )]
        manifest_sha256: Option<String>,
        /// Restore without the manifest's SHA-256, when it was lost: whoever could write the
        /// backup's disk could have put accounts, documents or a signing key of their own in it.
        #[arg(long, conflicts_with = "manifest_sha256")]
        trust_manifest: bool,
    },
    /// Move a stopped district server (its data directory) into a cluster's PostgreSQL
    /// database, and its photos into the cluster's bucket; then compare every record, the
    /// feed heads and each document's heads, and load every document as `verify` does. Prints
    /// what moved as JSON. Run the same command again to finish one that stopped halfway.
    Migrate {
        /// The data directory of the stopped sled server.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The cluster's database (`postgres://user:password@host:port/database`), empty.
        #[arg(long, value_parser = parse_database, value_name = "URL")]
        to: String,
        /// The cluster's photo bucket, `s3://BUCKET[/PREFIX]?endpoint=URL` (credentials from
        /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Without it photos stay in DIR/blobs.
        #[arg(long = "blobs", id = "migrate_blobs", value_parser = crate::migrate::parse_bucket, value_name = "URL")]
        blobs: Option<crate::blobs::BlobLocation>,
        /// Accept a database that already holds accounts or settings (never documents): the
        /// district's records replace those of the same id.
        #[arg(long)]
        into_existing: bool,
    },
}

/// Environment variable holding the password for `create-admin`.
pub const ADMIN_PASSWORD_ENV: &str = "CHIEFSYNC_ADMIN_PASSWORD";

impl Cli {
    pub fn settings(&self) -> Settings {
        Settings {
            signing_key: self.signing_key.clone(),
            access_ttl_secs: self.access_ttl_secs,
            refresh_ttl_secs: self.refresh_ttl_secs,
            max_photo_bytes: self.max_photo_bytes,
            max_in_flight: self.max_in_flight,
            max_in_flight_per_user: self.max_in_flight_per_user,
            body_rate: crate::shed::BodyRate {
                grace: std::time::Duration::from_secs(self.body_grace_secs),
                min_bytes_per_sec: self.body_min_rate,
            },
            password_threads: self.password_threads,
            workflow: WorkflowSettings {
                overdue_grace_ms: i64::from(self.overdue_grace_hours) * 3_600_000,
                deadline_check_every: std::time::Duration::from_secs(self.deadline_check_secs),
                duplicate_radius_m: self.duplicate_radius_m.max(0.0),
                abandoned_upload_after: std::time::Duration::from_secs(
                    u64::from(self.abandoned_upload_days) * 86_400,
                ),
            },
            photos: crate::photos::PhotoSettings {
                daily_bytes_per_user: self.photo_bytes_per_user_per_day,
                unreferenced_after: std::time::Duration::from_secs(
                    u64::from(self.unreferenced_photo_days) * 86_400,
                ),
            },
            desk: crate::desk::DeskSettings {
                tile_url: self.tile_url.clone(),
                tile_attribution: self.tile_attribution.clone(),
                tiles: self.tiles.clone(),
                pair_warn_m: self.photo_pair_warn_m.max(0.0),
            },
            blobs: self.blobs.clone().unwrap_or_default(),
            database: self.database.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            ..Settings::new(&self.data_dir)
        }
    }
}

/// A `--database` address: PostgreSQL's URL form, checked when the command line is read.
fn parse_database(url: &str) -> Result<String, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("expected postgres://user:password@host:port/database".into());
    }
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| e.to_string())?;
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Counts the spans a subscriber opens, by whether their target is automerge's.
    #[derive(Clone, Default)]
    struct Spans(std::sync::Arc<std::sync::Mutex<(usize, usize)>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut counts = self.0.lock().unwrap();
            if attrs.metadata().target().starts_with("automerge") {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
    }

    /// Spans opened while a document with a few changes is loaded and one of the server's own
    /// information-level spans is opened, under `filter`: (automerge's, the server's).
    fn spans_under(filter: &str) -> (usize, usize) {
        use automerge::transaction::Transactable;
        use tracing_subscriber::layer::SubscriberExt;

        let mut doc = automerge::AutoCommit::new();
        for n in 0..3_i64 {
            doc.put(automerge::ROOT, "n", n).unwrap();
            doc.commit();
        }
        let bytes = doc.save();
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(filter))
            .with(spans.clone());
        tracing::subscriber::with_default(subscriber, || {
            automerge::AutoCommit::load(&bytes).unwrap();
            let _span = tracing::info_span!("sync", device = "d1").entered();
        });
        let counts = *spans.0.lock().unwrap();
        counts
    }

    #[test]
    fn the_default_log_keeps_the_servers_spans_and_not_automerges() {
        let (automerge, ours) = spans_under("info");
        assert!(automerge > 0, "automerge opens information-level spans");
        assert_eq!(ours, 1);
        assert_eq!(spans_under(DEFAULT_LOG_FILTER), (0, 1));
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_is_sled_unless_a_postgres_address_is_given() {
        assert_eq!(Cli::try_parse_from(["chiefsync"]).unwrap().database, None);
        let url = "postgres://chiefsync:secret@10.0.0.5:5432/chiefsync";
        let cli = Cli::try_parse_from(["chiefsync", "--database", url]).unwrap();
        assert_eq!(cli.settings().database.as_deref(), Some(url));
        assert!(Cli::try_parse_from(["chiefsync", "--database", "mysql://x/y"]).is_err());
        assert!(
            Cli::try_parse_from(["chiefsync", "--database", "postgres://h:notaport/d"]).is_err()
        );
    }

    #[test]
    fn defaults_and_subcommand_parse() {
        let cli = Cli::try_parse_from(["chiefsync", "--demo"]).unwrap();
        assert!(cli.demo);
        assert_eq!(cli.addr, "127.0.0.1:8080");
        assert_eq!(cli.settings().access_ttl_secs, 900);
        assert_eq!(cli.settings().refresh_ttl_secs, 2_592_000);
        let cli = Cli::try_parse_from(["chiefsync", "create-admin", "--username", "root"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::CreateAdmin { ref username, .. }) if username == "root")
        );
        assert!(Cli::try_parse_from(["chiefsync", "--access-ttl-secs", "0"]).is_err());
        let cli = Cli::try_parse_from(["chiefsync", "backup", "--to", "/mnt/b"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Backup { ref to }) if to.as_os_str() == "/mnt/b")
        );
        assert!(Cli::try_parse_from(["chiefsync", "restore"]).is_err());
        // A restore names the manifest it expects, or says it trusts whatever is there.
        assert!(Cli::try_parse_from(["chiefsync", "restore", "--from", "/b"]).is_err());
        let cli = Cli::try_parse_from([
            "chiefsync",
            "restore",
            "--from",
            "/b",
            "--manifest-sha256",
            "ab12",
            "--data",
            "/new",
        ])
        .unwrap();
        assert_eq!(cli.data_dir.as_os_str(), "/new");
        assert!(
            matches!(cli.command, Some(Command::Restore { ref from, ref manifest_sha256, trust_manifest: false })
                if from.as_os_str() == "/b" && manifest_sha256.as_deref() == Some("ab12"))
        );
        let cli = Cli::try_parse_from(["chiefsync", "restore", "--from", "/b", "--trust-manifest"])
            .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Restore {
                manifest_sha256: None,
                trust_manifest: true,
                ..
            })
        ));
        let cli = Cli::try_parse_from(["chiefsync", "--overdue-grace-hours", "24"]).unwrap();
        assert_eq!(cli.settings().workflow.overdue_grace_ms, 86_400_000);
        assert_eq!(cli.settings().workflow.deadline_check_every.as_secs(), 300);
        assert_eq!(
            cli.settings().max_in_flight,
            crate::shed::DEFAULT_MAX_IN_FLIGHT
        );
        let cli = Cli::try_parse_from(["chiefsync", "--max-in-flight", "8"]).unwrap();
        assert_eq!(cli.settings().max_in_flight, 8);
        assert!(Cli::try_parse_from(["chiefsync", "--max-in-flight", "0"]).is_err());
        let defaults = Cli::try_parse_from(["chiefsync"]).unwrap().settings();
        assert_eq!(defaults.body_rate, crate::shed::BodyRate::default());
        assert_eq!(defaults.max_in_flight_per_user, 4);
        let cli = Cli::try_parse_from([
            "chiefsync",
            "--body-grace-secs",
            "5",
            "--body-min-rate",
            "100",
            "--password-threads",
            "1",
        ])
        .unwrap();
        assert_eq!(cli.settings().body_rate.grace.as_secs(), 5);
        assert_eq!(cli.settings().body_rate.min_bytes_per_sec, 100);
        assert_eq!(cli.settings().password_threads, 1);
    }

    #[test]
    fn blobs_are_files_unless_a_bucket_is_named() {
        use crate::blobs::BlobLocation;
        let defaults = Cli::try_parse_from(["chiefsync"]).unwrap().settings();
        assert_eq!(defaults.blobs, BlobLocation::Files);
        let cli = Cli::try_parse_from([
            "chiefsync",
            "--blobs",
            "s3://photos/tianqiao?endpoint=http://127.0.0.1:8333&region=cn-north-1",
        ])
        .unwrap();
        let BlobLocation::S3(location) = cli.settings().blobs else {
            panic!("not s3: {:?}", cli.settings().blobs);
        };
        assert_eq!(
            (location.bucket.as_str(), location.prefix.as_str()),
            ("photos", "tianqiao")
        );
        assert_eq!(
            location.to_string(),
            "s3://photos/tianqiao?aws_endpoint=http://127.0.0.1:8333&aws_region=cn-north-1"
        );
        for bad in [
            "http://photos",
            "s3://",
            "s3://photos?secret_access_key=x",
            "s3://photos?aws_access_key_id=x",
            "s3://key:secret@photos",
            "s3://photos?no_such_option=1",
        ] {
            assert!(
                Cli::try_parse_from(["chiefsync", "--blobs", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
