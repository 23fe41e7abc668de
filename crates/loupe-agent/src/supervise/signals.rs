//! Signal forwarding from `loupe run` to its child.
//!
//! The forwarded signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
//! SIGUSR2) are blocked in every thread of the supervisor and taken with
//! `sigtimedwait` by one thread, which sends each on to the child. A mask
//! is inherited across `exec`, so the child gets the mask from before the
//! block back between fork and exec ([`BlockedSignals::unblock_in_child`]).
//! Blocking instead of installing handlers means no async-signal-safety
//! concerns and no signal is lost between handler and loop.
//!
//! # Why the child stays in our process group, and how Ctrl-C is not doubled
//! The child shares `loupe run`'s process group, so it keeps the terminal:
//! it can read stdin (`input()`, `pdb`), and Ctrl-Z suspends both together
//! as one job. The price is that a key the terminal turns into a signal
//! (Ctrl-C → SIGINT, Ctrl-\ → SIGQUIT, a hang-up → SIGHUP) already reaches
//! the child directly, through the group. Such signals come from the
//! kernel (`si_code == SI_KERNEL`), so they are **not** forwarded; signals
//! sent by a process to `loupe run` (`kill PID`, a scheduler, a test
//! harness: `SI_USER`, `SI_QUEUE`, `SI_TKILL`) are. If the child has moved
//! to another process group (it called `setsid`), it no longer gets the
//! terminal's signals, so then every signal is forwarded. One case stays
//! doubled: a process that signals the whole group (`kill -INT -PGID`)
//! reaches the child directly and through us; a scheduler that does that
//! (SLURM's `scancel`) signals every process anyway.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::thread::JoinHandle;

/// The signals forwarded to the child.
pub const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// `si_code` of a signal the kernel generated (a terminal key, a hang-up).
const SI_KERNEL: libc::c_int = 0x80;

/// The forwarded signals blocked in the calling thread; restores the
/// previous mask when dropped.
pub struct BlockedSignals {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks [`FORWARDED`] in the calling thread. Call it before starting
    /// any thread: threads inherit the mask, so none of them takes the
    /// signals away from the forwarding thread.
    pub fn block() -> io::Result<Self> {
        // SAFETY: sigset_t is plain data that sigemptyset initialises;
        // pthread_sigmask only reads `set` and writes `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, s);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Self { set, old })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block` in this thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

impl BlockedSignals {
    /// Makes `cmd`'s process start with the signal mask from before
    /// [`BlockedSignals::block`], so the child receives the forwarded
    /// signals (a blocked mask survives `exec`).
    pub fn unblock_in_child(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let old = self.old;
        // SAFETY: the closure runs between fork and exec and calls only
        // `pthread_sigmask`, which is async-signal-safe, on a copied mask.
        unsafe {
            cmd.pre_exec(move || {
                let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(rc))
                }
            });
        }
    }
}

/// The forwarding thread.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The last signal received, 0 when none.
    pub last: Arc<AtomicI32>,
}

impl Forwarder {
    /// Starts forwarding to `child` until [`Forwarder::stop`]; `exited`
    /// turns true once the child has been reaped, after which nothing is
    /// sent (its pid may be reused).
    pub fn start(
        blocked: &BlockedSignals,
        child: libc::pid_t,
        exited: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let set = blocked.set;
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicI32::new(0));
        let (stop2, last2) = (stop.clone(), last.clone());
        let thread = std::thread::Builder::new()
            .name("loupe-signals".into())
            .spawn(move || forward_loop(set, child, &exited, &stop2, &last2))?;
        Ok(Self {
            stop,
            thread: Some(thread),
            last,
        })
    }

    /// Stops the thread (within half a second: its wait times out).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward_loop(
    set: libc::sigset_t,
    child: libc::pid_t,
    exited: &AtomicBool,
    stop: &AtomicBool,
    last: &AtomicI32,
) {
    // Wakes twice a second only to notice `stop`; a signal ends the wait
    // at once.
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 500_000_000,
    };
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: `info` is written by sigtimedwait; `set` is a valid
        // initialised sigset.
        let (sig, code) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigtimedwait(&set, &mut info, &timeout);
            (sig, info.si_code)
        };
        if sig <= 0 {
            continue;
        }
        last.store(sig, Ordering::SeqCst);
        if exited.load(Ordering::SeqCst) {
            continue;
        }
        if code == SI_KERNEL && same_group(child) {
            // The terminal sent it to the whole foreground group: the
            // child has it already.
            continue;
        }
        // SAFETY: kill has no memory effects; a stale pid is excluded by
        // `exited` (set right after the child is reaped).
        unsafe {
            libc::kill(child, sig);
        }
    }
}

/// Whether the child is still in our process group.
fn same_group(child: libc::pid_t) -> bool {
    // SAFETY: getpgid has no memory effects.
    unsafe { libc::getpgid(child) == libc::getpgid(0) }
}
