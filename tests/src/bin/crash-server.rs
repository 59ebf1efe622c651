//! The server half of the server crash test (`tests/tests/server_crash.rs`): the ChiefSync
//! service exactly as `chiefsync --demo` builds it (state, demo seed, `http_server`), on the
//! address and data directory given, printing `ready` once it listens. The test kills it with
//! SIGKILL and starts it again on the same data. It is not a tool for anything else.
//!
//! Usage: `crash-server <data-dir> <addr> [--database postgres://…] [--blobs s3://…]`: with
//! `--database` the store is that PostgreSQL database (several of these servers share it, as
//! in `two_node_crash.rs`), with `--blobs` photos are kept there.

use std::net::TcpListener;

use actix_web::web;
use server::auth::password::PasswordCost;
use server::blobs::BlobLocation;
use server::{demo, http_server, AppState, Settings};

/// The allocator `chiefsync` runs with, so the service killed here is the one that is deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: crash-server <data-dir> <addr> [--database URL] [--blobs URL]";
    let (Some(data_dir), Some(addr)) = (args.next(), args.next()) else {
        return Err(usage.into());
    };
    let mut settings = Settings {
        signing_key: Some(tests::server::SIGNING_KEY.into()),
        password_cost: PasswordCost::FAST_FOR_TESTS,
        ..Settings::new(&data_dir)
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(usage)?;
        match flag.as_str() {
            "--database" => settings.database = Some(value),
            "--blobs" => settings.blobs = BlobLocation::parse(&value)?,
            _ => return Err(usage.into()),
        }
    }
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
