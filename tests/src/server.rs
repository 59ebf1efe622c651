//! A real ChiefSync server on 127.0.0.1, in a thread of this process, over a data directory the
//! caller chooses, so a test can stop it and start it again on the same data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use server::auth::password::PasswordCost;
use server::{demo, http_server, AppState, Settings};

/// The signing key of test servers (tokens survive a restart, as in production).
pub const SIGNING_KEY: &str = "end-to-end-test-signing-key-0123456789";

#[derive(Debug)]
pub struct RunningServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub data_dir: PathBuf,
    state: Option<web::Data<AppState>>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Starts a server over `data_dir`, seeding the Tianqiao demo when `demo` is set and the
    /// directory has not been seeded yet.
    pub fn start(data_dir: &Path, demo: bool) -> Self {
        let settings = Settings {
            signing_key: Some(SIGNING_KEY.into()),
            password_cost: PasswordCost::FAST_FOR_TESTS,
            ..Settings::new(data_dir)
        };
        // The previous server over the same directory may still be releasing the sled lock.
        let mut attempts = 0;
        let state = loop {
            match AppState::open(&settings) {
                Ok(state) => break state,
                Err(err) if attempts >= 100 => panic!("open server state: {err}"),
                Err(_) => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        if demo {
            demo::seed(&state).expect("seed the demo");
        }
        let state = web::Data::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = mpsc::channel();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = http_server(served, listener, Some(2)).expect("http server");
                tx.send(server.handle())
                    .expect("hand over the server handle");
                server.await.expect("server ran");
            });
        });
        let handle = rx.recv().expect("server started");
        Self {
            base,
            data_dir: data_dir.to_path_buf(),
            state: Some(state),
            handle,
            thread: Some(thread),
        }
    }

    /// The server's state, for checking what it stored.
    pub fn state(&self) -> &AppState {
        self.state.as_ref().expect("server is running")
    }

    /// Stops gracefully, flushes and releases the database.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        thread.join().expect("server thread");
        if let Some(state) = self.state.take() {
            state.store.flush().expect("flush on stop");
        }
        // The workers drop their handles on the state a moment after the server stops; wait
        // until the database is free, so the caller may open it at once.
        let db = self.data_dir.join("db");
        for _ in 0..200 {
            match sled::open(&db) {
                Ok(_) => return,
                Err(_) => std::thread::sleep(Duration::from_millis(25)),
            }
        }
        panic!("the server did not release {}", db.display());
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
