//! `repo-bench`: documents merged per second by ChiefSync and by the automerge-repo sync server,
//! side by side in one run (see `repo.rs`).

use clap::Parser;

mod repo;

/// Documents merged per second: ChiefSync beside the automerge-repo sync server (Node), the
/// same phones' documents pushed to both (needs node and npm).
#[derive(Debug, Parser)]
struct Cli {
    #[arg(long, default_value_t = 500)]
    patrols: usize,
    #[arg(long, default_value_t = 500)]
    issues: usize,
    /// Phones pushing concurrently.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Length of each patrol's 1 Hz track, in seconds.
    #[arg(long, default_value_t = 300)]
    track_secs: u32,
    /// Runs on fresh servers; the median is printed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn main() {
    let cli = Cli::parse();
    repo::run(
        cli.patrols,
        cli.issues,
        cli.devices,
        cli.track_secs,
        cli.runs,
    );
}
