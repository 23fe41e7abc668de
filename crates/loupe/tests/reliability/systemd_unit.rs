//! The systemd unit in `docs/deployment.md`, read from the doc itself so the
//! two cannot drift: `systemd-analyze verify` accepts it (where installed),
//! and `loupe serve` started as the unit starts it (its `ExecStart` with the
//! paths and port substituted, its `Environment`) stops on its `KillSignal`
//! well within its `TimeoutStopSec` while event streams are open, a client
//! is stuck in its headers and a writer keeps writing, and keeps everything
//! it acknowledged.
//!
//! Where a service manager can run (root, systemd and util-linux
//! installed), the unit runs under a real one, sandbox and `User=`
//! included: root's `systemd --user` in a private mount namespace (see
//! [`Manager`]). Elsewhere the test starts the command itself, and says so.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::shutdown::{
    EXIT_WITHIN, Writer, assert_stream_ended, check_acked, open_stream, partial_head, write,
};
use crate::support::{Api, create_token, loupe_bin, wait_for};

/// The doc's unit: the block after this line.
const UNIT_HEADER: &str = "# /etc/systemd/system/loupe.service";

/// The unit's fixed paths and port, and what the test puts in their place.
/// Each must occur in the unit: a changed unit fails here instead of
/// quietly testing something else.
const BINARY: &str = "/usr/local/bin/loupe";
const DATA: &str = "/var/lib/loupe";
const RULES: &str = "/etc/loupe/rules.toml";
const ADDR: &str = "0.0.0.0:7070";

/// The unit file's text, verbatim.
fn unit_text() -> String {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deployment.md");
    let doc = std::fs::read_to_string(&doc).expect("docs/deployment.md");
    let start = doc
        .find(&format!("```ini\n{UNIT_HEADER}\n"))
        .expect("docs/deployment.md has the unit in an ```ini block");
    let body = &doc[start + "```ini\n".len()..];
    let end = body.find("\n```").expect("the unit's block ends");
    format!("{}\n", &body[..end])
}

/// What the test needs from the unit's `[Service]` section.
struct Unit {
    text: String,
    exec_start: Vec<String>,
    environment: Vec<(String, String)>,
    kill_signal: String,
    timeout_stop: Duration,
    user: String,
}

fn unit() -> Unit {
    let text = unit_text();
    for fixed in [BINARY, DATA, RULES, ADDR] {
        assert!(text.contains(fixed), "the unit no longer has {fixed}");
    }
    let mut service = Vec::new();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (k, v) = line.split_once('=').expect("key=value");
            service.push((k.to_string(), v.to_string()));
        }
    }
    let one = |key: &str| -> String {
        let mut v = service.iter().filter(|(k, _)| k == key);
        let found = v.next().unwrap_or_else(|| panic!("the unit has no {key}="));
        assert!(v.next().is_none(), "the unit has {key}= twice");
        found.1.clone()
    };
    let exec = one("ExecStart");
    // Split on spaces as systemd does for unquoted words; quotes or
    // specifiers would need systemd's own rules.
    assert!(
        !exec.contains(['"', '\'', '%', '\\', '$']),
        "ExecStart needs a real parser now: {exec}"
    );
    let environment = service
        .iter()
        .filter(|(k, _)| k == "Environment")
        .map(|(_, v)| {
            let (k, v) = v.split_once('=').expect("Environment=KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    let timeout = one("TimeoutStopSec");
    Unit {
        exec_start: exec.split_whitespace().map(String::from).collect(),
        environment,
        kill_signal: one("KillSignal"),
        timeout_stop: Duration::from_secs(timeout.parse().expect("TimeoutStopSec in seconds")),
        user: one("User"),
        text,
    }
}

/// Where the test's copy of the unit lives and listens.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
    /// The binary the unit runs: a copy inside `dir`, because the unit's
    /// user must reach it, and the checkout may sit under a directory only
    /// its owner can enter (a `mktemp -d` clone: systemd then fails with
    /// 203/EXEC).
    bin: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::Builder::new()
            .prefix("loupe-unit-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("rules.toml"),
            "# No rules of its own: the built-in ones alone.\n",
        )
        .unwrap();
        // A free port, released for the server (it binds 0.0.0.0 as the
        // unit does, so it must be told the port).
        let port = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        let bin = bin_dir.join("loupe");
        if std::fs::hard_link(loupe_bin(), &bin).is_err() {
            std::fs::copy(loupe_bin(), &bin).unwrap();
        }
        chmod(&bin_dir, 0o755);
        chmod(&bin, 0o755);
        Site { dir, port, bin }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The unit's text with the fixed paths and port made the test's.
    fn localize(&self, s: &str) -> String {
        s.replace(BINARY, self.bin.to_str().unwrap())
            .replace(DATA, self.data().to_str().unwrap())
            .replace(RULES, self.dir.path().join("rules.toml").to_str().unwrap())
            .replace(ADDR, &format!("0.0.0.0:{}", self.port))
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

/// Starts and stops the unit's server.
trait Launcher {
    fn start(&mut self);
    /// Stops it as the unit does; how long that took. Asserts a clean exit.
    fn stop(&mut self) -> Duration;
}

/// The command run directly, as the unit would run it (not as its `User`:
/// that takes root and a user that exists).
struct Direct {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    signal: i32,
    bound: Duration,
    log: PathBuf,
    child: Option<Child>,
}

impl Launcher for Direct {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between
            // fork and exec. The server must not outlive a killed test.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("starting the unit's command"));
    }

    fn stop(&mut self) -> Duration {
        let mut c = self.child.take().expect("started");
        let t = Instant::now();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(c.id() as i32, self.signal) }, 0);
        let status: ExitStatus = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > self.bound {
                // What systemd does after TimeoutStopSec.
                let _ = c.kill();
                panic!("no exit within TimeoutStopSec; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = t.elapsed();
        assert!(
            status.success(),
            "exit {status:?}; log:\n{}",
            self.log_text()
        );
        took
    }
}

impl Direct {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The unit under a real service manager: root's `systemd --user`, which
/// runs without systemd as PID 1 once `/run/systemd/system` exists. That
/// directory (on a tmpfs over `/run/systemd`) and the unit's user (in a
/// copy of `/etc/passwd` and `/etc/group` mounted over them) exist only in
/// the manager's private mount namespace, so nothing outside sees them.
/// The unit file is the doc's with the paths and port substituted;
/// `User=`, the sandbox and the limits are systemd's to apply.
struct Manager {
    manager: Child,
    env: Vec<(String, String)>,
    uid: u32,
}

/// What the manager's namespace is set up with before `systemd --user`.
const MANAGER_SETUP: &str = r#"set -e
mount -t tmpfs loupe-test /run/systemd
mkdir /run/systemd/system
mount --bind "$1/passwd" /etc/passwd
mount --bind "$1/group" /etc/group
exec "$2" --user
"#;

impl Manager {
    /// Starts the manager; `Err(why)` where one cannot run here.
    fn open(site: &Site, unit: &Unit) -> Result<Manager, String> {
        if std::env::var_os("LOUPE_TEST_NO_SYSTEMD").is_some() {
            return Err("LOUPE_TEST_NO_SYSTEMD is set".into());
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (mount namespaces, User=)".into());
        }
        let systemd = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("systemd is not installed")?;
        for tool in ["unshare", "nsenter", "systemctl"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(format!("{tool} is not installed"));
            }
        }
        let dir = site.dir.path();
        // The unit's user: the host's if it has one, else a new one.
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
        let group = std::fs::read_to_string("/etc/group").map_err(|e| e.to_string())?;
        let user = &unit.user;
        let existing = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user.as_str())).then(|| f.get(2)?.parse::<u32>().ok())?
        });
        let (uid, passwd, group) = match existing {
            Some(uid) => (uid, passwd, group),
            None => {
                let uid = 64_999;
                let line = format!("{user}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin");
                (
                    uid,
                    format!("{}\n{line}\n", passwd.trim_end()),
                    format!("{}\n{user}:x:{uid}:\n", group.trim_end()),
                )
            }
        };
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        std::fs::write(dir.join("group"), group).unwrap();
        // The service reaches its files through the temporary directory.
        chmod(dir, 0o755);
        let units = dir.join("config/systemd/user");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("loupe.service"), site.localize(&unit.text)).unwrap();
        let runtime = dir.join("runtime");
        std::fs::create_dir(&runtime).unwrap();
        chmod(&runtime, 0o700);
        let env = vec![
            ("XDG_RUNTIME_DIR".to_string(), runtime.display().to_string()),
            (
                "XDG_CONFIG_HOME".to_string(),
                dir.join("config").display().to_string(),
            ),
        ];
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(MANAGER_SETUP)
            .arg("sh")
            .arg(dir)
            .arg(systemd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("manager.log")).unwrap());
        let manager = cmd.spawn().map_err(|e| format!("unshare: {e}"))?;
        let mut m = Manager { manager, env, uid };
        let t = Instant::now();
        loop {
            let state = m.systemctl(&["is-system-running"]);
            if matches!(state.trim(), "running" | "degraded") {
                return Ok(m);
            }
            if let Ok(Some(status)) = m.manager.try_wait() {
                let log = std::fs::read_to_string(dir.join("manager.log")).unwrap_or_default();
                return Err(format!("systemd --user exited ({status}): {log}"));
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err(format!("systemd --user is {state:?} after 20 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `systemctl --user ARGS` in the manager's namespace; its stdout.
    fn systemctl(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args([
                "-t",
                &self.manager.id().to_string(),
                "-m",
                "systemctl",
                "--user",
            ])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("nsenter systemctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show loupe.service`'s value of `property`.
    fn show(&self, property: &str) -> String {
        let out = self.systemctl(&["show", "loupe.service", "-p", property, "--value"]);
        out.trim().to_string()
    }

    fn status(&self) -> String {
        self.systemctl(&["status", "--no-pager", "loupe.service"])
    }
}

impl Launcher for Manager {
    fn start(&mut self) {
        self.systemctl(&["start", "loupe.service"]);
        assert_eq!(self.show("ActiveState"), "active", "{}", self.status());
        // It runs as the unit's user: systemd applied the unit.
        let pid = self.show("MainPID");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().nth(1) == Some(self.uid.to_string().as_str()),
            "loupe runs as {uid}, not uid {}",
            self.uid
        );
    }

    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        // Blocks until the service is stopped: KillSignal, then SIGKILL
        // after TimeoutStopSec.
        self.systemctl(&["stop", "loupe.service"]);
        let took = t.elapsed();
        // `timeout` had it needed SIGKILL; `exit-code` had loupe failed.
        assert_eq!(self.show("Result"), "success", "{}", self.status());
        assert_eq!(self.show("ExecMainStatus"), "0", "{}", self.status());
        took
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // Stopping the manager stops the service first.
        self.systemctl(&["exit"]);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.manager.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.manager.kill();
        let _ = self.manager.wait();
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Hands the data directory to the unit's user (files made by the test,
/// as root, included).
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Waits until the server answers this client.
fn wait_ready(api: &Api) {
    wait_for(
        Duration::from_secs(30),
        "the unit's server to answer",
        || {
            api.try_get("/api/v1/runs", &[])
                .ok()
                .filter(|r| r.status == 200)
        },
    );
}

#[test]
fn the_documented_unit_verifies() {
    let has_analyze = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_analyze {
        eprintln!("SKIPPED: systemd-analyze is not installed (Debian: apt-get install systemd)");
        return;
    }
    let unit = unit();
    let dir = tempfile::tempdir().unwrap();
    // Only the binary's path: verify checks that ExecStart can run.
    let path = dir.path().join("loupe.service");
    std::fs::write(&path, unit.text.replace(BINARY, loupe_bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("loupe.service"),
        "systemd-analyze warns about the unit: {stderr}"
    );
}

#[test]
fn the_documented_unit_stops_in_time_and_keeps_what_it_acknowledged() {
    let unit = unit();
    assert_eq!(
        unit.kill_signal, "SIGTERM",
        "the graceful stop is SIGTERM's"
    );
    let site = Site::new();
    let token = create_token(&site.data(), "p", "admin");
    let mut launcher: Box<dyn Launcher> = match Manager::open(&site, &unit) {
        Ok(m) => {
            chown_tree(&site.data(), m.uid);
            eprintln!("running the unit under systemd --user");
            Box::new(m)
        }
        Err(why) => {
            eprintln!("systemd cannot run the unit here ({why}): running its command directly");
            Box::new(Direct {
                argv: unit.exec_start.iter().map(|a| site.localize(a)).collect(),
                env: unit.environment.clone(),
                signal: libc::SIGTERM,
                bound: unit.timeout_stop,
                log: site.dir.path().join("loupe.log"),
                child: None,
            })
        }
    };
    launcher.start();
    let api = Api::new(&format!("http://{}", site.addr())).with_token(&token);
    wait_ready(&api);
    // It listens on 0.0.0.0, so it asks for the token even on loopback.
    let anonymous = Api::new(&api.base).try_get("/api/v1/runs", &[]).unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    api.create_run(json!({"id": "r", "project": "p"}));
    write(&api, 0, 5);

    let auth = format!("Authorization: Bearer {token}\r\n");
    let writer = Writer::start(api.clone(), 5);
    let streams: Vec<_> = (0..3).map(|_| open_stream(site.addr(), &auth)).collect();
    let stuck: Vec<_> = (0..3).map(|_| partial_head(site.addr(), &auth)).collect();
    std::thread::sleep(Duration::from_millis(800));
    let took = launcher.stop();
    eprintln!("stopped with 3 streams, 3 partial heads and a writer in {took:?}");
    // The doc promises 5 s whatever the clients do, well within the
    // unit's TimeoutStopSec.
    assert!(took < EXIT_WITHIN, "stopping took {took:?}");
    assert!(EXIT_WITHIN * 2 < unit.timeout_stop);
    let mut acked = writer.finish();
    assert!(acked.len() >= 2, "the writer got only {} acks", acked.len());
    for s in streams {
        assert_stream_ended(s);
    }
    drop(stuck);

    launcher.start();
    wait_ready(&api);
    acked.extend(0..5);
    check_acked(&api, &acked);
    launcher.stop();
}
