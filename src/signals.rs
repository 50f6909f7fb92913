//! Stop requests: SIGINT and SIGTERM (once [`install`]ed) and a closed output pipe, all turned
//! into one flag that the trainer reads at every step boundary.
//!
//! The handler does only what is async-signal-safe: it stores the signal number in an atomic
//! (lock-free on every platform Rust supports), and if a stop was already requested it calls
//! `_exit` with `128 + signal` — so a second Ctrl-C quits at once. Everything else (writing
//! the state file, the last weights, the message) happens in normal code after the current
//! step, which is why a stop never leaves a half-written file: every output is written
//! atomically ([`crate::outputs`]).
//!
//! `signal(2)` is called directly (glibc, musl and the BSDs give it BSD semantics: the handler
//! stays installed and interrupted reads restart); this is the only `unsafe` outside the SIMD
//! code. On non-Unix targets [`install`] does nothing and only [`request`] sets the flag.
//!
//! SIGPIPE stays ignored, as Rust programs start: a write to a closed pipe returns `EPIPE`,
//! which the trainer turns into [`Stop::PipeClosed`].

use std::sync::atomic::{AtomicI32, Ordering};

/// Why a run was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C): exit status 130.
    Interrupt,
    /// SIGTERM: exit status 143.
    Terminate,
    /// Standard output or standard error was closed (`| head`): exit status 141, silently.
    PipeClosed,
}

impl Stop {
    /// The exit status a shell reports for the signal: `128 + signal number`.
    pub fn exit_status(self) -> u8 {
        128 + self.signal_number() as u8
    }

    /// SIGINT 2, SIGTERM 15, SIGPIPE 13 (the same numbers on Linux, macOS and the BSDs).
    pub fn signal_number(self) -> i32 {
        match self {
            Stop::Interrupt => SIGINT,
            Stop::Terminate => SIGTERM,
            Stop::PipeClosed => SIGPIPE,
        }
    }

    /// `SIGINT`, `SIGTERM` or `a closed pipe`.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::PipeClosed => "a closed pipe",
        }
    }

    fn from_number(n: i32) -> Option<Stop> {
        match n {
            SIGINT => Some(Stop::Interrupt),
            SIGTERM => Some(Stop::Terminate),
            SIGPIPE => Some(Stop::PipeClosed),
            _ => None,
        }
    }
}

const SIGINT: i32 = 2;
const SIGPIPE: i32 = 13;
const SIGTERM: i32 = 15;

/// 0, or the number of the first stop request.
static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// The first stop requested so far, if any.
pub fn requested() -> Option<Stop> {
    Stop::from_number(REQUESTED.load(Ordering::SeqCst))
}

/// Requests a stop (the first request wins).
pub fn request(stop: Stop) {
    let _ = REQUESTED.compare_exchange(0, stop.signal_number(), Ordering::SeqCst, Ordering::SeqCst);
}

/// Forgets any request (for a library caller that runs several trainings).
pub fn clear() {
    REQUESTED.store(0, Ordering::SeqCst);
}

#[cfg(unix)]
mod sys {
    use std::os::raw::c_int;

    /// `SIG_ERR`: `(void (*)(int)) -1`.
    pub const SIG_ERR: usize = usize::MAX;

    extern "C" {
        pub fn signal(signum: c_int, handler: usize) -> usize;
        pub fn _exit(status: c_int) -> !;
    }
}

#[cfg(unix)]
extern "C" fn on_signal(signum: std::os::raw::c_int) {
    let first = REQUESTED.compare_exchange(0, signum, Ordering::SeqCst, Ordering::SeqCst);
    if first.is_err() {
        // SAFETY: `_exit` is async-signal-safe (POSIX) and takes any status; it ends the
        // process without running destructors, which is the point of a second Ctrl-C.
        unsafe { sys::_exit(128 + signum) }
    }
}

/// Installs the SIGINT and SIGTERM handlers. Errors name the signal.
pub fn install() -> std::result::Result<(), String> {
    #[cfg(unix)]
    for signum in [SIGINT, SIGTERM] {
        let handler = on_signal as extern "C" fn(std::os::raw::c_int) as usize;
        // SAFETY: `signal` is given a valid signal number and the address of an
        // `extern "C" fn(c_int)` that only touches an atomic and calls `_exit`, both
        // async-signal-safe; the function lives for the whole program.
        let previous = unsafe { sys::signal(signum, handler) };
        if previous == sys::SIG_ERR {
            return Err(format!(
                "cannot install the handler of signal {signum}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_128_plus_the_signal() {
        assert_eq!(Stop::Interrupt.exit_status(), 130);
        assert_eq!(Stop::Terminate.exit_status(), 143);
        assert_eq!(Stop::PipeClosed.exit_status(), 141);
        for s in [Stop::Interrupt, Stop::Terminate, Stop::PipeClosed] {
            assert_eq!(Stop::from_number(s.signal_number()), Some(s));
        }
    }
}
