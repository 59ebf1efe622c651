//! The server half of the server crash test (`tests/tests/server_crash.rs`): the ChiefSync
//! service exactly as `chiefsync --demo` builds it (state, demo seed, `http_server`), on the
//! address and data directory given, printing `ready` once it listens. The test kills it with
//! SIGKILL and starts it again on the same data. It is not a tool for anything else.
//!
//! Usage: `crash-server <data-dir> <addr>`

use std::net::TcpListener;

use actix_web::web;
use server::auth::password::PasswordCost;
use server::{demo, http_server, AppState, Settings};

/// The allocator `chiefsync` runs with, so the service killed here is the one that is deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(data_dir), Some(addr)) = (args.next(), args.next()) else {
        return Err("usage: crash-server <data-dir> <addr>".into());
    };
    let settings = Settings {
        signing_key: Some(tests::server::SIGNING_KEY.into()),
        password_cost: PasswordCost::FAST_FOR_TESTS,
        ..Settings::new(&data_dir)
    };
    let state = AppState::open(&settings)?;
    demo::seed(&state)?;
    let listener = TcpListener::bind(&addr)?;
    let state = web::Data::new(state);
    let server = http_server(state.clone(), listener, Some(2))?;
    println!("ready");
    actix_web::rt::System::new().block_on(server)?;
    state.store.flush()?;
    Ok(())
}
