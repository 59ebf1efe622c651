//! `chiefsync`: parses the command line, sets up logging, opens the state and either creates an
//! administrator or serves until SIGINT/SIGTERM, then flushes the store.

use std::io::BufRead;
use std::net::TcpListener;
use std::process::ExitCode;

use actix_web::web;
use clap::Parser;
use server::config::{Cli, Command, ADMIN_PASSWORD_ENV};
use server::state::now_ms;
use server::{accounts, http_server, AppState};
use sync_core::model::Role;

/// The server allocates and frees many short-lived buffers on every core (documents, changes,
/// answers); mimalloc does that with less work than the system allocator and returns memory
/// instead of keeping it in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    server::config::init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "chiefsync stopped");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(cli: Cli) -> Result<(), BoxError> {
    // Backup and restore run beside (or instead of) a server: they never open its state.
    match &cli.command {
        Some(Command::Backup { to }) => return backup(&cli, to),
        Some(Command::Restore {
            from,
            manifest_sha256,
            ..
        }) => {
            let expected = match manifest_sha256 {
                Some(sha256) => server::backup::Expected::Sha256(sha256.clone()),
                None => server::backup::Expected::Trusted,
            };
            let restored = server::backup::restore(from, &cli.data_dir, &expected)?;
            println!("{}", serde_json::to_string_pretty(&restored)?);
            return Ok(());
        }
        Some(Command::Migrate {
            from,
            to,
            blobs,
            into_existing,
        }) => {
            let target = server::storage::PostgresStore::open(to)
                .map_err(|e| format!("the target database {}: {e}", redacted(to)))?;
            let bucket = match blobs {
                Some(location) => Some(
                    location
                        .open(from)
                        .map_err(|e| format!("the target bucket {location}: {e}"))?,
                ),
                None => None,
            };
            let migrated = server::migrate::migrate_dir(
                from,
                &target,
                bucket.as_deref(),
                server::migrate::Options {
                    into_existing: *into_existing,
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&migrated)?);
            return Ok(());
        }
        _ => {}
    }
    let state = AppState::open(&cli.settings())?;
    match &cli.command {
        Some(Command::CreateAdmin {
            username,
            display_name,
        }) => create_admin(&state, username, display_name.as_deref()),
        Some(Command::Backup { .. } | Command::Restore { .. } | Command::Migrate { .. }) => {
            unreachable!("handled above")
        }
        Some(Command::Verify) => {
            let report = server::integrity::check_documents(state.store.as_ref())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.damaged.is_empty() {
                Ok(())
            } else {
                Err(format!("{} damaged documents", report.damaged.len()).into())
            }
        }
        None => {
            if cli.demo {
                server::demo::seed_sized(&state, server::demo::DemoSize::District)?;
            }
            let listener = TcpListener::bind(&cli.addr)?;
            tracing::info!(addr = %listener.local_addr()?, data_dir = %cli.data_dir.display(), store = if cli.database.is_some() { "postgres" } else { "sled" }, "serving");
            if let Some(tiles) = &state.tiles {
                // A basemap that cannot be read stops the start, with the reason. Checked on a
                // copy; the workers open their own at the first tile.
                let check = server::tiles::LocalTiles::new(tiles.path());
                let info = actix_web::rt::System::new().block_on(check.open())?;
                tracing::info!(tiles = %tiles.path().display(), min_zoom = info.min_zoom, max_zoom = info.max_zoom, "local basemap");
            }
            let state = web::Data::new(state);
            let backups = state.clone();
            let data_dir = cli.data_dir.clone();
            // A server that cannot offer backups still serves (a data directory path too
            // long for a socket, say); `chiefsync backup` then says the server does not answer.
            if let Err(err) = server::backup::control::listen(&cli.data_dir, move |to| {
                server::backup::take(backups.store.as_ref(), backups.blobs.store(), &data_dir, to)
            }) {
                tracing::warn!(error = %err, "backups unavailable: no control socket");
            }
            let server = http_server(state.clone(), listener, cli.workers)?;
            actix_web::rt::System::new().block_on(async {
                let deadlines = server::jobs::spawn(state.clone());
                let facts = server::stats::spawn_keeper(state.clone());
                let served = server.await;
                deadlines.abort();
                facts.abort();
                served
            })?;
            state.store.flush()?;
            tracing::info!("stopped; store flushed");
            Ok(())
        }
    }
}

/// A database address without its password, for messages.
fn redacted(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            format!(
                "{}@{}/{}",
                config.get_user().unwrap_or(""),
                hosts.join(","),
                config.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "(unreadable address)".into(),
    }
}

fn create_admin(
    state: &AppState,
    username: &str,
    display_name: Option<&str>,
) -> Result<(), BoxError> {
    let password = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(password) => password,
        Err(_) => {
            eprintln!("password for {username} (or set {ADMIN_PASSWORD_ENV}):");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let record = accounts::new_user(
        &state.passwords,
        username,
        display_name.unwrap_or(username),
        Role::Admin,
        &password,
        now_ms(),
    )?;
    state.store.create_user(&record)?;
    tracing::info!(user = %record.user.id, %username, "administrator created");
    Ok(())
}

/// `chiefsync backup --to DIR`: asks the server running over the data directory, or copies a
/// stopped one directly; prints what the backup holds.
fn backup(cli: &Cli, to: &std::path::Path) -> Result<(), BoxError> {
    let to = std::path::absolute(to)?;
    let started = std::time::Instant::now();
    let manifest = match server::backup::control::request(&cli.data_dir, &to)? {
        Some(manifest) => manifest,
        None => server::backup::take_offline(&cli.data_dir, &to)?,
    };
    let summary = serde_json::json!({
        "to": to.display().to_string(),
        "manifest_sha256": manifest.sha256(),
        "feed_head": manifest.feed_head,
        "documents": manifest.documents,
        "users": manifest.users,
        "photos": manifest.photos.len(),
        "bytes": manifest.total_bytes(),
        "saves_held_ms": manifest.held_ms,
        "took_ms": started.elapsed().as_millis() as u64,
        "signing_key": manifest.signing_key.is_some(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
