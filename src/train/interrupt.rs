//! Preemption: SIGTERM (what SLURM and Kubernetes send before killing a job) and Ctrl-C
//! (SIGINT) ask the run to stop at the next safe point, the end of the current step, where it
//! writes a checkpoint and says how to resume. A second signal ends the process at once, with
//! the shell's code for that signal (128 + its number).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;

/// Which signal asked the run to stop, once one has. Dropping it restores the default
/// handling (the signal ends the process).
pub struct Interrupt {
    signal: Arc<AtomicUsize>,
    handlers: Vec<SigId>,
    notice: Option<(signal_hook::iterator::Handle, std::thread::JoinHandle<()>)>,
}

impl Interrupt {
    /// Installs the handlers for SIGINT and SIGTERM (for the rest of the process).
    pub fn install() -> anyhow::Result<Self> {
        let count = Arc::new(AtomicUsize::new(0));
        let signal = Arc::new(AtomicUsize::new(0));
        let mut handlers = Vec::new();
        for sig in [SIGINT, SIGTERM] {
            let (count, signal) = (count.clone(), signal.clone());
            // One atomic read-modify-write decides first or second: two signals sent together
            // may be handled on two threads at the same moment, and a separate check and set
            // would let both pass as the first.
            let action = move || {
                if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    signal.store(sig as usize, Ordering::SeqCst);
                } else {
                    signal_hook::low_level::exit(128 + sig);
                }
            };
            // SAFETY: the action only touches atomics and calls `_exit`, both
            // async-signal-safe, and allocates nothing.
            handlers.push(unsafe { signal_hook::low_level::register(sig, action) }?);
        }
        // The first signal is acknowledged at once (a step can take minutes): a thread that
        // waits on signal-hook's self-pipe prints what will happen, outside the handler.
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!(
                    "\n{} received: stopping after this step with a checkpoint (send it again to stop at once)",
                    signal_name(sig)
                );
            }
        });
        Ok(Self {
            signal,
            handlers,
            notice: Some((handle, thread)),
        })
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<Interrupted> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Some(Interrupted { signal: n as i32 }),
        }
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        for id in self.handlers.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        if let Some((handle, thread)) = self.notice.take() {
            handle.close();
            let _ = thread.join();
        }
    }
}

/// The error a run stopped by a signal ends with; the binary exits with `128 + signal`.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {}", signal_name(*signal))]
pub struct Interrupted {
    pub signal: i32,
}

impl Interrupted {
    /// The shell's exit code for the signal.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
