//! Who and where the supervised command is: the fields of the run that
//! `loupe run` creates (name, command line, working directory, git commit
//! and dirty flag, host, rank and group from the launcher's environment).

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a git query may take: a slow network filesystem or a huge
/// working tree must not delay the training start by more than this.
const GIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Rank and world size variables, first match wins: torchrun sets `RANK`
/// even inside a SLURM allocation, where `SLURM_PROCID` names the launcher
/// task (the same order as the Python SDK's `_env.py`).
const RANK_SOURCES: &[(&str, &str)] = &[
    ("RANK", "WORLD_SIZE"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
];

/// Rank, world size and group of a distributed job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distributed {
    pub rank: Option<u32>,
    pub world_size: Option<u32>,
    pub group: Option<String>,
}

/// Reads torchrun, MPI, PMI and SLURM variables through `get` (the process
/// environment in practice; a map in tests). `LOUPE_GROUP` names the group;
/// else torchrun's `TORCHELASTIC_RUN_ID`, else `slurm-$SLURM_JOB_ID` for a
/// SLURM job of several tasks.
pub fn distributed(get: impl Fn(&str) -> Option<String>) -> Distributed {
    let int = |v: &str| get(v).and_then(|s| s.trim().parse::<i64>().ok());
    let mut out = Distributed::default();
    let mut source = None;
    for (r, w) in RANK_SOURCES {
        if let Some(rank) = int(r) {
            out.rank = u32::try_from(rank).ok();
            out.world_size = int(w)
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| *w >= 1);
            source = Some(*r);
            break;
        }
    }
    // The server refuses rank >= world_size; a broken environment must not
    // cost the run its creation.
    if let (Some(r), Some(w)) = (out.rank, out.world_size)
        && r >= w
    {
        out.rank = None;
        out.world_size = None;
    }
    let nonempty = |v: &str| {
        get(v)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    out.group = nonempty("LOUPE_GROUP")
        .or_else(|| nonempty("TORCHELASTIC_RUN_ID").filter(|s| s != "none"))
        .or_else(|| {
            (source == Some("SLURM_PROCID") && out.world_size.unwrap_or(0) > 1)
                .then(|| nonempty("SLURM_JOB_ID").map(|j| format!("slurm-{j}")))
                .flatten()
        });
    out
}

/// The command line as one string, each argument quoted as a POSIX shell
/// would need it (so it can be pasted back).
pub fn command_line(argv: &[OsString]) -> String {
    let mut out = String::new();
    for a in argv {
        if !out.is_empty() {
            out.push(' ');
        }
        let a = a.to_string_lossy();
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        if plain {
            out.push_str(&a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

/// The name a run gets when none is given: the script's name (`train` for
/// `python train.py`, `pkg.mod` for `python -m pkg.mod`, else the program's
/// file name) and the run id.
pub fn default_name(argv: &[OsString], run_id: &str) -> String {
    let base = script_name(argv).unwrap_or_else(|| "run".to_owned());
    format!("{base}-{run_id}")
}

fn script_name(argv: &[OsString]) -> Option<String> {
    let program = Path::new(argv.first()?)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let mut args = argv[1..].iter().map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == "-m" {
            return args.next().map(|m| m.into_owned());
        }
        if a.starts_with('-') {
            continue;
        }
        // The first argument that names a script (`train.py`, `run.sh`):
        // interpreters and launchers (python, torchrun, accelerate launch)
        // take it as what to run.
        let p = Path::new(a.as_ref());
        if p.extension().is_some_and(|e| {
            matches!(
                e.to_str(),
                Some("py" | "sh" | "ipynb" | "jl" | "R" | "lua" | "js")
            )
        }) {
            return p.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
    }
    Some(program)
}

/// Git facts of the working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitState {
    pub commit: Option<String>,
    /// Tracked files modified (untracked files are not counted: a training
    /// directory is full of outputs and checkpoints).
    pub dirty: Option<bool>,
}

/// `git rev-parse HEAD` and `git status --porcelain` in `cwd`, each within
/// [`GIT_TIMEOUT`]; nothing when it is not a repository or git is missing.
pub fn git_state(cwd: &Path) -> GitState {
    let Some(sha) = git(cwd, &["rev-parse", "HEAD"]) else {
        return GitState::default();
    };
    let sha = sha.trim().to_owned();
    if !(7..=64).contains(&sha.len()) || !sha.bytes().all(|c| c.is_ascii_hexdigit()) {
        return GitState::default();
    }
    let dirty =
        git(cwd, &["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.trim().is_empty());
    GitState {
        commit: Some(sha),
        dirty,
    }
}

/// Runs git with a deadline; its stdout when it exits 0 in time.
fn git(cwd: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // No pager, no prompts, no optional locks taken in the user's repo.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .spawn()
        .ok()?;
    let deadline = Instant::now() + GIT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                child
                    .stdout
                    .take()?
                    .take(1 << 20)
                    .read_to_string(&mut out)
                    .ok()?;
                return status.success().then_some(out);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The host name (`gethostname`), when it has one.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// A fresh run id: 8 characters of `a-z0-9`, like the Python SDK's, from
/// the kernel's random source (the time and pid when that fails).
pub fn new_run_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        bytes = t.to_le_bytes();
    }
    bytes
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn ranks() {
        let d = distributed(env(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "4"),
            ("TORCHELASTIC_RUN_ID", "job7"),
        ]));
        assert_eq!(
            d,
            Distributed {
                rank: Some(1),
                world_size: Some(4),
                group: Some("job7".into())
            }
        );
        let d = distributed(env(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_JOB_ID", "99"),
        ]));
        assert_eq!(d.group.as_deref(), Some("slurm-99"));
        let d = distributed(env(&[
            ("OMPI_COMM_WORLD_RANK", "5"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
        ]));
        assert_eq!((d.rank, d.world_size), (None, None));
        assert_eq!(distributed(env(&[])), Distributed::default());
    }

    #[test]
    fn names() {
        assert_eq!(
            default_name(&os(&["python", "-u", "train.py", "--lr", "3"]), "ab12"),
            "train-ab12"
        );
        assert_eq!(
            default_name(&os(&["python3", "-m", "pkg.main"]), "x"),
            "pkg.main-x"
        );
        assert_eq!(
            default_name(&os(&["/usr/bin/my-trainer", "cfg"]), "x"),
            "my-trainer-x"
        );
        assert_eq!(
            command_line(&os(&["python", "-c", "print('hi')"])),
            r#"python -c 'print('\''hi'\'')'"#
        );
        let id = new_run_id();
        assert_eq!(id.len(), 8);
    }
}
