//! Running model-written Python (issue 21): code benchmarks (CRUXEval, HumanEval, MBPP) and
//! the code rewards execute what a model wrote, which may loop, fork, allocate, write or delete
//! files, open sockets or read secrets. Each program runs in its own `python3` process:
//!
//! - in a fresh temporary directory (its working directory and `HOME`), removed afterwards;
//! - with an empty environment (`PATH`, `HOME`, `LANG` only; `python3 -I`: no user site, no
//!   `PYTHON*` variables), the program on standard input (no file to read it back from);
//! - under limits: wall clock (the whole process group is killed), CPU seconds, address space,
//!   file size, processes, open files, no core dumps, captured output bounded;
//! - when run as root: in a new network namespace (no network, not even the host's loopback;
//!   where the kernel allows it: a container without CAP_SYS_ADMIN keeps the host's network)
//!   and as an unprivileged user id of its own (it cannot touch files it does not own, the
//!   process limit counts only its processes, and after the run every process of that user is
//!   killed, also one that left the program's process group). Run as another user, the rlimits still apply, and a
//!   network namespace is tried through an unprivileged user namespace where the kernel allows
//!   it.
//!
//! A program passes only when it exits with status 0 *and* prints, as its last line, a marker
//! chosen per run and appended after the program's own code: code that exits early with status
//! 0 (`os._exit(0)` before the tests) fails.
//!
//! Limits use the `rlimit` crate; the rest is a handful of libc calls in the child between
//! `fork` and `exec` (no crate wraps namespaces and privilege dropping for `std::process`).

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use rlimit::Resource;
use wait_timeout::ChildExt;

/// The limits one program runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Wall-clock time, after which the program's whole process group is killed.
    pub timeout: Duration,
    /// CPU seconds (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address space in bytes (RLIMIT_AS): what it may allocate, interpreter included.
    pub memory_bytes: u64,
    /// Largest file it may write, bytes (RLIMIT_FSIZE).
    pub file_bytes: u64,
    /// Processes (RLIMIT_NPROC; per user: effective when run as root, each run having a user
    /// id of its own).
    pub processes: u64,
    /// Bytes of standard output and of standard error kept (the rest is read and dropped).
    pub output_bytes: usize,
}

impl Default for Limits {
    /// 10 s wall clock and CPU, 2 GiB, 16 MiB files, 32 processes, 64 KiB of output each.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            cpu_seconds: 10,
            memory_bytes: 2 << 30,
            file_bytes: 16 << 20,
            processes: 32,
            output_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// The default limits with `seconds` of wall clock and of CPU (`--code-timeout`,
    /// `code_timeout`).
    pub fn with_timeout(seconds: u64) -> Self {
        Self {
            timeout: Duration::from_secs(seconds),
            cpu_seconds: seconds,
            ..Self::default()
        }
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Status {
    /// Exit status 0 after its last line (the marker).
    Passed,
    /// The wall clock or the CPU limit ran out.
    Timeout,
    /// It ran out of memory (a `MemoryError`, or killed allocating).
    Memory,
    /// It wrote a file past the size limit.
    FileSize,
    /// Anything else: an exception, a failed assertion, an early exit; the reason says which
    /// (the last line of standard error, or how it exited).
    Error(String),
}

/// What running a program gave.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub status: Status,
    /// Standard output (bounded), without the pass marker.
    pub stdout: String,
    /// Standard error (bounded).
    pub stderr: String,
    pub seconds: f64,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }
}

/// Runs Python programs under [`Limits`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The interpreter's real path (a pyenv shim or a PATH lookup resolved once).
    python: PathBuf,
    pub limits: Limits,
}

/// As root, each run gets a user id of its own from this range (no account needed): its
/// process limit is its own, and after the run every process with that id is killed, including
/// any that left the program's process group (`os.setsid()` in a fork).
const RUN_UIDS: std::ops::Range<u32> = 61_000..62_000;

/// The group of sandboxed runs as root (`nogroup`).
const RUN_GID: u32 = 65534;

/// A user id reserved for one run, across processes: an exclusive lock on `<uid>.lock` in a
/// directory only root can write, held until dropped (or until the process dies). Two
/// `intuitor` processes sandboxing at once would otherwise pick the same ids, and one run's
/// final sweep ([`kill_user`]) would kill the other's program.
struct RunUid {
    uid: u32,
    _lock: std::fs::File,
}

impl Drop for RunUid {
    /// Every process of the id is gone before its lock is released, on every exit path.
    fn drop(&mut self) {
        kill_user(self.uid);
    }
}

/// The program's process group, killed when dropped: on every exit path, no stray child of
/// the run outlives it.
struct Group(libc::pid_t);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group the child leads (setsid in `command`).
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

/// The folder of the user-id locks: `/run/intuitor-sandbox` (else under the temporary
/// directory), which must belong to this process's user and be writable by nobody else, so a
/// sandboxed program cannot plant locks or links there.
fn uid_lock_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut refused = Vec::new();
    for dir in [
        PathBuf::from("/run/intuitor-sandbox"),
        std::env::temp_dir().join("intuitor-sandbox-uids"),
    ] {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() && m.uid() == me && m.mode() & 0o022 == 0 => return Ok(dir),
            Ok(_) => refused.push(format!(
                "{} is not a directory of user {me} that no one else can write",
                dir.display()
            )),
            Err(e) => refused.push(format!("{}: {e}", dir.display())),
        }
    }
    anyhow::bail!("no folder for the sandbox's locks: {}", refused.join("; "))
}

/// Reserves the next free user id of [`RUN_UIDS`] (cycling from where this process last
/// stopped), and kills whatever still runs as it (left by a process that died mid-run).
fn reserve_uid() -> anyhow::Result<RunUid> {
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = uid_lock_dir()?;
    let n = RUN_UIDS.end - RUN_UIDS.start;
    for _ in 0..n {
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uid = RUN_UIDS.start + k % n;
        let path = dir.join(format!("{uid}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("{}: cannot open the user id's lock", path.display()))?;
        match lock.try_lock() {
            Ok(()) => {
                kill_user(uid);
                return Ok(RunUid { uid, _lock: lock });
            }
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("{}: cannot lock it", path.display()))
            }
        }
    }
    anyhow::bail!(
        "all {n} sandbox user ids ({}–{}) are in use by other runs",
        RUN_UIDS.start,
        RUN_UIDS.end - 1
    )
}

/// SIGKILLs every process whose real or effective user id is `uid` (reading `/proc`), until
/// none is left (a process forking while it runs is caught on the next pass).
fn kill_user(uid: u32) {
    for _ in 0..50 {
        let mut found = false;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let owned = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|ids| {
                    ids.split_whitespace()
                        .take(2)
                        .any(|id| id.parse() == Ok(uid))
                });
            if owned {
                found = true;
                // SAFETY: kill(2) on a process of the sandbox's own user id.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !found {
            return;
        }
    }
}

impl Sandbox {
    /// A sandbox running `python` (a path, or a name looked up on `PATH`); checks that it runs
    /// and resolves the executable it really is (`sys.executable`), since the sandbox's empty
    /// environment would break launchers such as pyenv shims. As root, programs run as an
    /// unprivileged user, so a name takes the first interpreter on `PATH` any user can run (a
    /// pyenv install under `/root` cannot be), and a path must be one.
    pub fn new(python: &str, limits: Limits) -> anyhow::Result<Self> {
        let root = unsafe { libc::geteuid() } == 0;
        let candidates: Vec<PathBuf> = match python.contains('/') {
            true => vec![PathBuf::from(python)],
            false => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(python))
                .filter(|p| p.is_file())
                .collect(),
        };
        let mut tried = Vec::new();
        for candidate in &candidates {
            let real = match resolve(candidate) {
                Ok(r) => r,
                Err(e) => {
                    tried.push(format!("{}: {e}", candidate.display()));
                    continue;
                }
            };
            if root && !others_can_run(&real) {
                tried.push(format!(
                    "{} is {}, which an unprivileged user cannot run (a directory on its path is private)",
                    candidate.display(),
                    real.display()
                ));
                continue;
            }
            return Ok(Self {
                python: real,
                limits,
            });
        }
        if tried.is_empty() {
            tried.push(format!("no {python} on PATH"));
        }
        anyhow::bail!(
            "no usable Python interpreter for the sandbox (set --python to one, e.g. /usr/bin/python3): {}",
            tried.join("; ")
        )
    }

    /// The interpreter programs run with.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Runs `program` (Python source) and says how it ended; errors only when the sandbox
    /// itself cannot be set up (no temporary directory, the interpreter cannot start).
    pub fn run(&self, program: &str) -> anyhow::Result<Outcome> {
        self.execute(program, None)
    }

    /// Runs `program` as a script (`main.py` in its directory) with `input` on its standard
    /// input, as competitive-programming judges do. It passes when it exits with status 0; no
    /// marker is appended, since such a program is judged by its output ([`Outcome::stdout`]).
    pub fn run_with_input(&self, program: &str, input: &str) -> anyhow::Result<Outcome> {
        self.execute(program, Some(input))
    }

    /// [`Self::run`] (`input` `None`: the program on standard input, a marker after it) or
    /// [`Self::run_with_input`].
    fn execute(&self, program: &str, input: Option<&str>) -> anyhow::Result<Outcome> {
        let dir = tempfile::Builder::new()
            .prefix("intuitor-sandbox-")
            .tempdir()
            .context("creating the sandbox's temporary directory")?;
        // SAFETY: geteuid(2) has no preconditions.
        let reserved = match unsafe { libc::geteuid() } == 0 {
            true => Some(reserve_uid()?),
            false => None,
        };
        let uid = reserved.as_ref().map(|r| r.uid);
        if let Some(uid) = uid {
            // SAFETY: chown(2) on a path this process just created.
            let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes())?;
            if unsafe { libc::chown(path.as_ptr(), uid, RUN_GID) } != 0 {
                anyhow::bail!("{}: cannot hand it to user {uid}", dir.path().display());
            }
        }
        let marker = format!("intuitor-pass-{:016x}", rand::rng().random::<u64>());
        let (script, feed) = match input {
            None => (None, format!("{program}\nprint({marker:?})\n")),
            Some(input) => {
                let script = dir.path().join("main.py");
                std::fs::write(&script, program)
                    .with_context(|| format!("writing {}", script.display()))?;
                (Some(script), input.to_string())
            }
        };
        let mut cmd = self.command(dir.path(), uid, script.as_deref());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.python.display()))?;
        let group = Group(child.id() as libc::pid_t);
        let bound = self.limits.output_bytes;
        let out = capture(child.stdout.take(), bound);
        let err = capture(child.stderr.take(), bound);
        if let Some(mut stdin) = child.stdin.take() {
            // On a thread: a program that never reads a long input must still time out. One
            // that exits before reading all of it closes the pipe: not our error.
            std::thread::spawn(move || {
                let _ = stdin.write_all(feed.as_bytes());
            });
        }
        let waited = child.wait_timeout(self.limits.timeout);
        // The whole group goes, whether the program ended or not: no stray children stay. As
        // root, so does every process of the run's user, in the group or not.
        drop(group);
        drop(reserved);
        let waited = waited?;
        let status = match waited {
            Some(s) => Some(s),
            None => {
                child.wait()?;
                None
            }
        };
        let seconds = start.elapsed().as_secs_f64();
        let ((stdout, tail), (stderr, _)) = (join(out), join(err));
        // The marker is looked for in the output's last bytes, kept apart from the bounded
        // head: a program printing more than the bound can still pass.
        let marked = script.is_some() || tail.trim_end().ends_with(&marker);
        let stdout = match stdout.trim_end().strip_suffix(&marker) {
            Some(rest) => rest.to_string(),
            None => stdout,
        };
        let status = classify(status, marked, &stderr);
        Ok(Outcome {
            status,
            stdout,
            stderr,
            seconds,
        })
    }

    /// The interpreter's command: empty environment, the directory, the limits and (as root,
    /// `uid` given) the network namespace and the run's own user, set in the child before
    /// `exec`.
    fn command(&self, dir: &Path, uid: Option<u32>, script: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-I", "-B"])
            .arg(script.map_or("-".as_ref(), Path::as_os_str))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir)
            .env("TMPDIR", dir)
            .env("LANG", "C.UTF-8")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let l = self.limits;
        // SAFETY: between fork and exec the closure only makes system calls (setsid, setrlimit,
        // unshare, setgroups, setgid, setuid) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let cpu = l.cpu_seconds.max(1);
                for (res, soft, hard) in [
                    (Resource::CPU, cpu, cpu + 1),
                    (Resource::AS, l.memory_bytes, l.memory_bytes),
                    (Resource::FSIZE, l.file_bytes, l.file_bytes),
                    (Resource::NPROC, l.processes, l.processes),
                    (Resource::NOFILE, 64, 64),
                    (Resource::CORE, 0, 0),
                ] {
                    res.set(soft, hard)?;
                }
                if let Some(uid) = uid {
                    // Without CAP_SYS_ADMIN (a default Docker container) there is no network
                    // namespace: the run goes on with the host's network.
                    let _ = libc::unshare(libc::CLONE_NEWNET);
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(RUN_GID) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                } else {
                    // Where unprivileged user namespaces are allowed: no network.
                    let _ = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET);
                }
                Ok(())
            });
        }
        cmd
    }
}

/// The executable `python` really is (`sys.executable`).
fn resolve(python: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(python)
        .args(["-I", "-c", "import sys; print(sys.executable)"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        anyhow::bail!(
            "it did not run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(path))
}

/// Whether a user who owns none of it can run `exe`: every directory above it searchable by
/// others, the file readable and executable by others.
fn others_can_run(exe: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(real) = exe.canonicalize() else {
        return false;
    };
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
    // The path as executed (a venv's `bin/python` under a private home) and the file it
    // resolves to both need searchable directories.
    let searchable = |p: &Path| p.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0);
    mode(&real) & 0o005 == 0o005 && searchable(&real) && searchable(exe)
}

/// Bytes of a pipe's end kept apart from its bounded head (room for the pass marker).
const TAIL_BYTES: usize = 256;

/// Reads a pipe to its end on a thread, keeping the first `bound` bytes and the last
/// [`TAIL_BYTES`].
fn capture<R: Read + Send + 'static>(
    pipe: Option<R>,
    bound: usize,
) -> Receiver<(Vec<u8>, Vec<u8>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = bound.saturating_sub(head.len());
                head.extend_from_slice(&buf[..n.min(room)]);
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > TAIL_BYTES {
                    tail.drain(..tail.len() - TAIL_BYTES);
                }
            }
        }
        let _ = tx.send((head, tail));
    });
    rx
}

/// What a reader captured (head, tail). A process that outlived the program's group and still
/// holds the pipe (possible when not run as root) makes its reader be abandoned after
/// [`READER_GRACE`]; the output then counts as empty.
fn join(rx: Receiver<(Vec<u8>, Vec<u8>)>) -> (String, String) {
    let (head, tail) = rx.recv_timeout(READER_GRACE).unwrap_or_default();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (text(head), text(tail))
}

/// How long the output readers may take after the program's group is gone.
const READER_GRACE: Duration = Duration::from_secs(2);

/// How the program ended, from its exit status (`None`: killed at the wall clock), whether its
/// last line was the marker, and its standard error.
fn classify(status: Option<std::process::ExitStatus>, marked: bool, stderr: &str) -> Status {
    let Some(status) = status else {
        return Status::Timeout;
    };
    let last_line = stderr.lines().rev().find(|l| !l.trim().is_empty());
    if last_line.is_some_and(|l| l.starts_with("MemoryError")) {
        return Status::Memory;
    }
    match (status.code(), status.signal()) {
        (Some(0), _) if marked => Status::Passed,
        (Some(0), _) => Status::Error("exited with status 0 before the end of the program".into()),
        (_, Some(libc::SIGXCPU)) | (_, Some(libc::SIGKILL)) => Status::Timeout,
        (_, Some(libc::SIGXFSZ)) => Status::FileSize,
        (_, Some(sig)) => Status::Error(format!("killed by signal {sig}")),
        (Some(code), _) => Status::Error(match last_line {
            Some(l) if l.contains("File too large") => return Status::FileSize,
            Some(l) => l.trim().to_string(),
            None => format!("exit status {code}"),
        }),
        (None, None) => Status::Error("ended without a status".into()),
    }
}
