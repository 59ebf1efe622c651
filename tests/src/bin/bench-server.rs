//! The server of `bench server --test-passwords`: `chiefsync` serving (the same command line,
//! allocator, logging, demo, workers, deadline job and statistics keeper), except that accounts
//! get their passwords hashed at argon2's cheapest cost (`PasswordCost::FAST_FOR_TESTS`), as in
//! the tests. A district of 10,000 simulated phones needs 10,000 accounts and 20,000 sign-ins
//! (each phone, and each phone's checker); at production cost that is about 14 a second on two
//! cores, most of an hour before the first patrol. Nothing a phone syncs touches a password:
//! the merged-and-converged phases run the same code as `chiefsync`.
//!
//! Only the serving path; `chiefsync`'s subcommands (backup, migrate, …) are not here. It is a
//! bench tool, never deployed.

use std::net::TcpListener;

use actix_web::web;
use clap::Parser;
use server::auth::password::PasswordCost;
use server::config::Cli;
use server::AppState;

/// The allocator `chiefsync` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    if cli.command.is_some() {
        return Err("bench-server only serves; run chiefsync for its subcommands".into());
    }
    // Logging as `chiefsync` sets it up: its cost is part of the server's.
    server::config::init_logging(cli.log_format);
    let mut settings = cli.settings();
    settings.password_cost = PasswordCost::FAST_FOR_TESTS;
    let state = AppState::open(&settings)?;
    if cli.demo {
        server::demo::seed_sized(&state, server::demo::DemoSize::District)?;
    }
    let listener = TcpListener::bind(&cli.addr)?;
    let state = web::Data::new(state);
    let server = server::http_server(state.clone(), listener, cli.workers)?;
    actix_web::rt::System::new().block_on(async {
        let deadlines = server::jobs::spawn(state.clone());
        let facts = server::stats::spawn_keeper(state.clone());
        let served = server.await;
        deadlines.abort();
        facts.abort();
        served
    })?;
    state.store.flush()?;
    Ok(())
}
