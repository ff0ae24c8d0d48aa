//! A throwaway PostgreSQL cluster for one test run: `initdb` into a
//! temporary directory, the server on a loopback port, started once by the
//! first test that asks for it, each test then with a database of its own.
//! The server stops and its directory is removed when the test process
//! exits, however it exits: a shell waits on a pipe from this process and
//! stops the server when the pipe closes.
//!
//! Nothing here is optional: a machine without PostgreSQL, or a server
//! that does not start, fails every test that asked for it, with the
//! reason and the server's log. `.ci/test` installs PostgreSQL when it is
//! missing.
//!
//! It uses only the crate's own dependencies, so `crisisd-bench` starts
//! its throwaway cluster with the same code.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian puts each PostgreSQL version's programs.
const DEBIAN_BIN: &str = "/usr/lib/postgresql";
/// The superuser initdb creates; loopback connections are trusted.
pub const SUPERUSER: &str = "crisisd";
/// How long initdb and the first start may take on a slow machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running cluster.
pub struct Cluster {
    pub port: u16,
    /// Held open for the life of the process: when it closes, the shell
    /// that started the server stops it and removes its directory.
    _lifeline: Mutex<ChildStdin>,
    _runner: Mutex<Child>,
}

impl Cluster {
    /// The URL of one database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts a cluster of its own (the benchmark wants one per run).
    pub fn start(settings: &[(&str, &str)]) -> Result<Self, String> {
        let bin = server_bin()?;
        let port = free_port()?;
        let dir = scratch_dir()?;
        let account = Account::for_server()?;
        account.own(&dir)?;
        let mut command = account.command();
        command
            .arg(script(&bin, &dir, port, settings))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut runner = command
            .spawn()
            .map_err(|e| format!("cannot start the PostgreSQL runner: {e}"))?;
        let lifeline = runner.stdin.take().ok_or("the runner has no stdin")?;
        wait_until_ready(&mut runner, &dir)?;
        Ok(Self {
            port,
            _lifeline: Mutex::new(lifeline),
            _runner: Mutex::new(runner),
        })
    }
}

/// The cluster shared by every test of this run, started on first use.
/// Panics with the reason when it cannot start: a PostgreSQL test never
/// passes without PostgreSQL.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let started = CLUSTER.get_or_init(|| {
        Cluster::start(&[
            // Throwaway data: durability would only slow the suite down.
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            // Every test opens pools of its own, several daemons too.
            ("max_connections", "400"),
            ("shared_buffers", "64MB"),
        ])
    });
    match started {
        Ok(cluster) => cluster,
        Err(reason) => panic!("PostgreSQL did not start for the tests: {reason}"),
    }
}

/// A fresh, empty database on the shared cluster, for one test.
pub async fn database() -> String {
    let cluster = cluster();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = cluster.url("postgres");
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster at {admin}: {e}"));
    sqlx::Executor::execute(&mut connection, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    cluster.url(&name)
}

/// The newest PostgreSQL whose programs are where Debian's packages put
/// them (or `$CRISISD_PG_BIN`).
fn server_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CRISISD_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_BIN)
        .map_err(|e| {
            format!("no PostgreSQL under {DEBIAN_BIN} ({e}); `.ci/test` installs the `postgresql` package")
        })?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no initdb under {DEBIAN_BIN}/*/bin"))
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| e.to_string())
}

fn scratch_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("crisisd-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The account the server runs as. PostgreSQL refuses to run as root, and
/// CI runs as root: then the `postgres` account Debian's package creates.
enum Account {
    Current,
    Other { name: String, uid: u32, gid: u32 },
}

impl Account {
    fn for_server() -> Result<Self, String> {
        if !running_as_root() {
            return Ok(Self::Current);
        }
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
        passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&"postgres"))
            .and_then(|fields| {
                Some(Self::Other {
                    name: "postgres".into(),
                    uid: fields.get(2)?.parse().ok()?,
                    gid: fields.get(3)?.parse().ok()?,
                })
            })
            .ok_or_else(|| {
                "running as root and there is no `postgres` account to run the server as \
                 (the `postgresql` package creates it; `.ci/test` installs it)"
                    .into()
            })
    }

    fn own(&self, dir: &Path) -> Result<(), String> {
        if let Self::Other { uid, gid, .. } = self {
            std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)).map_err(|e| {
                format!("cannot hand {} to the server's account: {e}", dir.display())
            })?;
        }
        Ok(())
    }

    fn command(&self) -> Command {
        match self {
            Self::Current => {
                let mut command = Command::new("sh");
                command.arg("-c");
                command
            }
            Self::Other { name, .. } => {
                let mut command = Command::new("runuser");
                command.args(["-u", name, "--", "sh", "-c"]);
                command
            }
        }
    }
}

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// initdb, the server in the background, then a wait for this process's
/// end (stdin closing), then a fast stop and the directory removed.
fn script(bin: &Path, dir: &Path, port: u16, settings: &[(&str, &str)]) -> String {
    let settings: String = settings
        .iter()
        .map(|(name, value)| format!(" -c {name}={value}"))
        .collect();
    format!(
        "set -e; cd '{dir}'; \
         '{bin}/initdb' -D '{dir}/data' -U {SUPERUSER} --auth=trust -E UTF8 --no-locale >'{dir}/initdb.log' 2>&1; \
         '{bin}/postgres' -D '{dir}/data' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1{settings} \
           >'{dir}/server.log' 2>&1 & server=$!; \
         cat >/dev/null || true; \
         kill -INT $server 2>/dev/null || true; wait $server || true; \
         cd /; rm -rf '{dir}'",
        dir = dir.display(),
        bin = bin.display(),
    )
}

/// Until the server's log says it accepts connections; the logs in the
/// error when initdb or the server failed.
fn wait_until_ready(runner: &mut Child, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log = read(&dir.join("server.log"));
        if log.contains("database system is ready to accept connections") {
            return Ok(());
        }
        let exited = runner.try_wait().map_err(|e| e.to_string())?;
        if exited.is_some() || Instant::now() > deadline {
            return Err(format!(
                "{}; initdb said:\n{}\nthe server said:\n{log}",
                if exited.is_some() {
                    "the server stopped"
                } else {
                    "the server did not become ready in time"
                },
                read(&dir.join("initdb.log")),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}
