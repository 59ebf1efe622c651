//! The server of the load test and the sync storm test (`tests/tests/load.rs`,
//! `tests/tests/storm.rs`): `chiefsync --demo` with the very same command line (every flag and
//! `CHIEFSYNC_…` variable of `server::config::Cli`, e.g. `--max-in-flight`), except that it uses
//! the tests' signing key and fast password hashing, so a thousand accounts are created and
//! signed in within seconds. It runs in its own process so the tests can read its memory from
//! `/proc`. Prints `ready <addr>` once it listens. It is not a tool for anything else.
//!
//! Usage: `load-server --addr 127.0.0.1:0 --data-dir DIR [chiefsync flags]`

use std::net::TcpListener;

use actix_web::web;
use clap::Parser;
use server::auth::password::PasswordCost;
use server::config::Cli;
use server::{demo, http_server, AppState, Settings};

/// The allocator `chiefsync` runs with: the memory this server's tests bound is the memory the
/// real server would hold. (The system allocator keeps freed memory in per-thread arenas and
/// would make them measure a server nobody runs.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let settings = Settings {
        signing_key: Some(tests::server::SIGNING_KEY.into()),
        password_cost: PasswordCost::FAST_FOR_TESTS,
        ..cli.settings()
    };
    let state = AppState::open(&settings)?;
    demo::seed(&state)?;
    let listener = TcpListener::bind(&cli.addr)?;
    let addr = listener.local_addr()?;
    let state = web::Data::new(state);
    let server = http_server(state.clone(), listener, cli.workers)?;
    println!("ready {addr}");
    actix_web::rt::System::new().block_on(server)?;
    state.store.flush()?;
    Ok(())
}
