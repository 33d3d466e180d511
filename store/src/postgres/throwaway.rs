//! A throwaway PostgreSQL cluster for tests (feature `throwaway-cluster`):
//! `initdb` into a temporary directory, `pg_ctl start` on loopback and a free
//! port, its socket in the same directory, stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root; as root the cluster runs as the
//! `postgres` user Debian's package creates (`runuser -u postgres --`), and
//! the directory is handed to it. The binaries are found under
//! `/usr/lib/postgresql/*/bin` (Debian's layout; the newest version wins).
//! Without them, [`ThrowawayCluster::start`] fails: tests must not skip.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a throwaway cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `initdb` under `/usr/lib/postgresql/*/bin`.
    #[error(
        "PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin \
         (install Debian's `postgresql` package; scripts/test.sh does)"
    )]
    NotInstalled,
    /// A step (initdb, pg_ctl, createdb) failed; its output.
    #[error("{step} failed: {output}")]
    Step { step: &'static str, output: String },
    #[error("throwaway cluster: {0}")]
    Io(#[from] std::io::Error),
}

/// A running cluster; stopped when dropped.
#[derive(Debug)]
pub struct ThrowawayCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with an `initdb`.
fn find_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn check(step: &'static str, output: std::io::Result<std::process::Output>) -> Result<(), ClusterError> {
    let output = output?;
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError::Step {
        step,
        output: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    })
}

impl ThrowawayCluster {
    /// Create and start a cluster; its superuser is `konsens`, trusted on loopback.
    pub fn start() -> Result<Self, ClusterError> {
        let bin = find_binaries().ok_or(ClusterError::NotInstalled)?;
        let dir = tempfile::Builder::new().prefix("konsens-pg-").tempdir()?;
        let as_postgres = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        if as_postgres {
            check("chown to postgres", Command::new("chown").arg("postgres:postgres").arg(dir.path()).output())?;
        }
        let mut cluster = Self { bin, dir, port: 0, as_postgres };
        let data = cluster.data();
        check(
            "initdb",
            cluster
                .command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "konsens", "-A", "trust", "-E", "UTF8", "--no-sync"])
                .output(),
        )?;
        // A port that was free a moment ago may be taken meanwhile: try a few.
        let mut last = None;
        for _ in 0..3 {
            cluster.port = free_port()?;
            let options = format!("-c listen_addresses=127.0.0.1 -p {} -k {}", cluster.port, cluster.dir.path().display());
            let started = check(
                "pg_ctl start",
                cluster
                    .command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(cluster.dir.path().join("log"))
                    .args(["-w", "-t", "60", "-o", &options, "start"])
                    .output(),
            );
            match started {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClusterError::NotInstalled))
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://konsens@127.0.0.1:{}/{database}", self.port)
    }

    /// Create an empty database; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        check(
            "createdb",
            self.command("createdb")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "konsens", name])
                .output(),
        )?;
        Ok(self.url(name))
    }

    /// Run SQL in `database` with `psql` (for tests that reach behind the store).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        let output = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "konsens", "-d", database])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(ClusterError::Step { step: "psql", output: format!("{text}{}", String::from_utf8_lossy(&output.stderr)) });
        }
        Ok(text)
    }

    /// The cluster's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let stopped = self.command("pg_ctl").arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]).output();
        if let Err(e) = check("pg_ctl stop", stopped) {
            eprintln!("throwaway cluster in {}: {e}", self.dir.path().display());
        }
    }
}
