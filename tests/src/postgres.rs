//! A PostgreSQL cluster of a test's own: `initdb` into a temporary directory and `pg_ctl` on a
//! free loopback port, so a test may restart it (`pg_ctl restart -m immediate`, as a crash of
//! the database machine does) without touching the PostgreSQL other tests and people share.
//! Connections are trusted on loopback (no password); the cluster is stopped with
//! `-m immediate` and its directory removed when dropped.
//!
//! The binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`),
//! or the directory named by `CHIEFSYNC_TEST_PG_BIN`. PostgreSQL refuses to run as root, so
//! when the test runs as root the cluster runs as the `postgres` system user.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The environment variable naming the directory of `initdb` and `pg_ctl`.
pub const PG_BIN_ENV: &str = "CHIEFSYNC_TEST_PG_BIN";

#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    /// The owner's account when running as root.
    owner: Option<String>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// The directory holding `initdb` and `pg_ctl`, or why there is none (said as `skipped: …`).
    pub fn binaries() -> Result<PathBuf, String> {
        if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
            let dir = PathBuf::from(dir);
            return if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                Ok(dir)
            } else {
                Err(format!(
                    "{PG_BIN_ENV}={} has no initdb and pg_ctl",
                    dir.display()
                ))
            };
        }
        // The newest version Debian installed.
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_string_lossy().parse().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
                    .then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin).ok_or_else(|| {
            format!(
                "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql and \
                 {PG_BIN_ENV} is not set (.ci/run installs Debian's postgresql)"
            )
        })
    }

    /// Creates and starts a cluster; `Err` says why none can run here.
    pub fn start() -> Result<Cluster, String> {
        let bin = Self::binaries()?;
        let root = run_output(Command::new("id").arg("-u"))
            .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("chiefsync-pg-")
            .tempdir()
            .map_err(|e| format!("a directory for the cluster: {e}"))?;
        let owner = if root {
            let ids = |flag: &str| -> Result<u32, String> {
                let out = run_output(Command::new("id").args([flag, "postgres"]))
                    .map_err(|e| format!("running as root and no postgres user: {e}"))?;
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .map_err(|e| format!("id {flag} postgres: {e}"))
            };
            std::os::unix::fs::chown(dir.path(), Some(ids("-u")?), Some(ids("-g")?))
                .map_err(|e| format!("hand the cluster's directory to postgres: {e}"))?;
            Some("postgres".to_owned())
        } else {
            None
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let cluster = Cluster {
            bin,
            owner,
            dir,
            port,
        };
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 100\nshared_buffers = 32MB\nfsync = on\n",
            cluster.dir.path().display()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| format!("configure the cluster: {e}"))?;
        cluster.ctl(&["start"])?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`, the cluster's own database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills every PostgreSQL process of the cluster at once (no checkpoint, as a power cut
    /// does) and starts it again, recovering from its write-ahead log; returns once it accepts
    /// connections.
    pub fn restart_immediately(&self) {
        self.ctl(&["-m", "immediate", "restart"])
            .unwrap_or_else(|e| panic!("restart the test's PostgreSQL: {e}"));
    }

    /// Stops the cluster as a crash does (`-m immediate`).
    pub fn stop_immediately(&self) {
        self.ctl(&["-m", "immediate", "stop"])
            .unwrap_or_else(|e| panic!("stop the test's PostgreSQL: {e}"));
    }

    /// Starts the stopped cluster again; returns once it accepts connections.
    pub fn start_again(&self) {
        self.ctl(&["start"])
            .unwrap_or_else(|e| panic!("start the test's PostgreSQL: {e}"));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `pg_ctl` on the cluster, waiting for it (up to a minute).
    fn ctl(&self, args: &[&str]) -> Result<(), String> {
        let (data, log) = (self.data(), self.log());
        let mut all = vec![
            "-D",
            data.to_str().unwrap_or_default(),
            "-l",
            log.to_str().unwrap_or_default(),
            "-w",
            "-t",
            "60",
        ];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all).map_err(|e| {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            format!(
                "{e}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }

    /// Runs one of the PostgreSQL programs as the cluster's owner.
    fn pg(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = match &self.owner {
            Some(owner) => {
                let mut c = Command::new("runuser");
                c.args(["-u", owner, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        // The programs resolve their own directory and relative paths from the working
        // directory, which the owner must be allowed to enter.
        command.args(args).current_dir(self.dir.path());
        let out = run_output(&mut command).map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.ctl(&["-m", "immediate", "stop"]);
        }
    }
}

fn run_output(command: &mut Command) -> std::io::Result<Output> {
    command.stdin(Stdio::null()).output()
}
