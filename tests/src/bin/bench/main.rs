//! Benchmarks that print figures (never asserted in tests). Run with
//! `cargo run --release -p tests --bin bench -- <name>`.
//!
//! Each benchmark lives in its own module and prints medians (and ratios where something is
//! compared side by side in the same run).

use clap::{Parser, Subcommand};

mod blobs;
mod export;
mod photo;
mod server;
mod sync;
mod track;
// The test SeaweedFS launcher of the S3 photo store, for `server --s3`; only part of it is
// used here.
#[allow(dead_code)]
#[path = "../../../../server/src/blobs/weed.rs"]
mod weed;

#[derive(Parser)]
#[command(about = "ChiefSync benchmarks: each prints its figures")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Saved-document bytes per GPS point: compact chunks vs one map per point.
    Track {
        /// Points in the track (1 Hz, so 3600 is an hour's walk).
        #[arg(long, default_value_t = 3_600)]
        points: usize,
        /// How many differently seeded tracks to measure; the median is printed.
        #[arg(long, default_value_t = 9)]
        runs: u64,
    },
    /// Preparing a 12-megapixel photo on the phone and thumbnailing it on the server, beside
    /// ImageMagick's `convert -resize 1920x1920 -quality 80` on the same file.
    Photo {
        /// Timed runs of each step; the median is printed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 4_000)]
        width: u32,
        #[arg(long, default_value_t = 3_000)]
        height: u32,
        /// A real camera JPEG to measure instead of the painted one.
        #[arg(long)]
        input: Option<std::path::PathBuf>,
    },
    /// One chief's phone syncing: ChiefSync's batch protocol beside plain automerge sync
    /// messages on the same documents (round trips, bytes, time).
    Sync {
        /// Timed runs of each scenario and protocol; the median is printed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The server's side of photo uploads: whole and chunked, duplicates, thumbnails, and
    /// rebuilding the photo index after a restart.
    Blobs {
        /// Photos uploaded each way; the median is printed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Exporting a district-year of statistics as XLSX and CSV (reports, tables, files timed
    /// apart), and building the facts from real documents on a sample, extrapolated.
    Export {
        /// Timed exports; the median is printed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 2_000)]
        chiefs: usize,
        #[arg(long, default_value_t = 100_000)]
        patrols: usize,
        #[arg(long, default_value_t = 20_000)]
        issues: usize,
        /// Patrol documents with 1 Hz tracks whose facts are built from the saved bytes.
        #[arg(long, default_value_t = 1_000)]
        sample_patrols: usize,
        /// Issue documents with workflow events whose facts are built from the saved bytes.
        #[arg(long, default_value_t = 200)]
        sample_issues: usize,
    },
    /// The field simulator (1,000 chiefs' phones × 7 days by default) against a release
    /// server on this machine: time of each phase, merged and converged, wire figures, lost,
    /// and the server's peak memory.
    Server {
        #[arg(long, default_value_t = 1_000)]
        devices: usize,
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Phones working or syncing at the same time. In the field all of them may come
        /// back at once; at 8 the server waited for phones between requests.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Also run the server on PostgreSQL, beside sled, alternating: the address of a user
        /// who may create databases (`postgres://postgres:PASSWORD@127.0.0.1:5432/postgres`).
        /// Each run gets a new database, dropped afterwards; the CPU time of the PostgreSQL
        /// server's processes is counted when it runs on this machine (give it a cluster of
        /// its own: everything it does is counted). `own` starts a cluster of the bench's own
        /// (Debian's PostgreSQL programs, a free loopback port, removed at the end).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// On the PostgreSQL runs keep photos in S3: a SeaweedFS of the run's own (the `weed`
        /// binary named by CHIEFSYNC_TEST_WEED), a new bucket each run.
        #[arg(long)]
        s3: bool,
        /// Runs of each store (sled, and PostgreSQL with `--database`, alternating); the
        /// medians are compared.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Server processes on one PostgreSQL database and S3 bucket (needs `--database` and
        /// `--s3`): runs with one node and with this many alternate, the phones spread over
        /// the nodes, and the CPU of all of them counted.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Hash the simulated accounts' passwords at argon2's cheapest cost, as the tests do
        /// (the `bench-server` program: `chiefsync`'s serving path with that one setting), so
        /// that 10,000 accounts and their sign-ins take seconds instead of most of an hour.
        /// The syncs do not touch passwords.
        #[arg(long)]
        test_passwords: bool,
        /// Where the phones keep their stores (default /dev/shm, which is memory; a run of
        /// 10,000 phones may want a disk).
        #[arg(long, value_name = "DIR")]
        phones_dir: Option<std::path::PathBuf>,
    },
}

fn main() {
    match Cli::parse().bench {
        Bench::Track { points, runs } => track::run(points, runs),
        Bench::Photo {
            runs,
            width,
            height,
            input,
        } => photo::run(runs, width, height, input.as_deref()),
        Bench::Sync { runs } => sync::run(runs),
        Bench::Blobs { runs } => blobs::run(runs),
        Bench::Server {
            devices,
            days,
            seed,
            concurrency,
            database,
            s3,
            rounds,
            nodes,
            test_passwords,
            phones_dir,
        } => server::run(&server::Params {
            devices,
            days,
            seed,
            concurrency,
            database,
            s3,
            rounds,
            nodes,
            test_passwords,
            phones_dir,
        }),
        Bench::Export {
            runs,
            chiefs,
            patrols,
            issues,
            sample_patrols,
            sample_issues,
        } => export::run(&export::Params {
            runs,
            chiefs,
            patrols,
            issues,
            sample_patrols,
            sample_issues,
        }),
    }
}
