//! Panics inside the libraries this one calls (burn-train, CubeCL), turned
//! into errors at the boundary where they are called.
//!
//! [`catch`] runs a call and returns, in a line, the first panic message
//! raised while it ran, on any thread: burn-train runs its event
//! store and checkpointer on threads of their own, and the panic that
//! reaches the caller ("Event store thread crashed") hides the one that
//! says what went wrong. A program that prints panics from its hook calls
//! [`record`] there first, so that a caught panic is reported once, as the
//! error, and not also printed.
//!
//! Messages are numbered as they are recorded, and each call takes the
//! first one numbered after it began, so calls that overlap (tests run in
//! parallel) do not take messages recorded before them. A message recorded
//! during a call that then returns normally (a worker thread's panic the
//! library handled) is printed to stderr, as the hook would have; or, with
//! [`catch_handled`], handed to the caller, whose result may already report
//! it (burn-train's multi-device workers catch their own panics and return
//! them as the run's error).
//!
//! Panics on CubeCL's device threads ([`on_device_thread`]) are another
//! matter: CubeCL runs every task there under `catch_unwind` and hands the
//! failure to whoever waits on the task, or marks the memory the task was
//! to write so that reading it fails with the cause. Its autotune also
//! tries kernels that may fail and keeps another (on an H200, a naive
//! matrix product's "Cube count too big" while timing one of Burn's
//! convolution candidates). Such a panic is never the error of a call that
//! failed for a reason of its own, nor one to print when the call went on:
//! it is kept only as the last resort for the error of a call that failed
//! without any other message.

use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Mutex;

/// What [`record`] keeps: the number the next message gets, the calls of
/// [`catch`] running, and the messages recorded while any ran.
struct Recorded {
    next: u64,
    active: usize,
    messages: Vec<Message>,
}

/// A recorded panic message.
struct Message {
    number: u64,
    text: String,
    /// Raised on a CubeCL device thread ([`on_device_thread`]).
    device: bool,
}

static RECORDED: Mutex<Recorded> = Mutex::new(Recorded {
    next: 0,
    active: 0,
    messages: Vec::new(),
});

fn recorded() -> std::sync::MutexGuard<'static, Recorded> {
    RECORDED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f`; a panic inside it becomes `Err` with, in a line, the first
/// panic message recorded since it began (or the panic's own).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let (value, handled) = catch_handled(f)?;
    print_handled(&handled);
    Ok(value)
}

/// Prints the panics a call handled ([`catch_handled`]) to stderr, one
/// line each.
pub fn print_handled(handled: &[String]) {
    for message in handled {
        crate::errln!("internal error in a call that went on: {message}");
    }
}

/// [`catch`], returning with the value the summaries of the panics that
/// were recorded while `f` ran and that it handled, rather than printing them.
/// A failure's message is the first recorded off CubeCL's device threads,
/// else the panic's own, else the first on a device thread; the handled
/// ones are those off the device threads.
pub fn catch_handled<T>(f: impl FnOnce() -> T) -> Result<(T, Vec<String>), String> {
    let start = {
        let mut state = recorded();
        state.active += 1;
        state.next
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    let (mine, device): (Vec<String>, Vec<String>) = {
        let mut state = recorded();
        state.active -= 1;
        let (device, mine): (Vec<&Message>, Vec<&Message>) = state
            .messages
            .iter()
            .filter(|m| m.number >= start)
            .partition(|m| m.device);
        let text = |ms: Vec<&Message>| ms.into_iter().map(|m| summary(&m.text)).collect();
        let split = (text(mine), text(device));
        if state.active == 0 {
            state.messages.clear();
        }
        split
    };
    match result {
        Ok(value) => Ok((value, mine)),
        Err(payload) => Err(mine
            .into_iter()
            .next()
            .or_else(|| payload_text(payload.as_ref()).map(|own| summary(&own)))
            .or_else(|| device.into_iter().next())
            .unwrap_or_else(|| "a panic without a message".into())),
    }
}

/// For a panic hook: records the panic's message when a [`catch`] is
/// running, and says so (the hook then need not print it).
pub fn record(info: &PanicHookInfo) -> bool {
    let message = payload_text(info.payload()).unwrap_or_else(|| info.to_string());
    record_message(message, on_device_thread())
}

/// [`record`] for a message raised on a device thread or not.
fn record_message(text: String, device: bool) -> bool {
    let mut state = recorded();
    if state.active == 0 {
        return false;
    }
    let number = state.next;
    state.next += 1;
    state.messages.push(Message {
        number,
        text,
        device,
    });
    true
}

/// Whether this thread is one of CubeCL's device threads, which catch
/// every panic of theirs and report it to the task's caller (cubecl-common
/// 0.11.3 names them `DSU-<type>-<index>` and `DSD-<type>-<index>`). A panic
/// hook need not print their panics: what they break fails where it is used,
/// with the cause.
pub fn on_device_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with("DSU-") || name.starts_with("DSD-"))
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}

/// A panic message in a line: its first, or for a CubeCL failure (a chain
/// of `Caused by:`) the summary and the deepest cause.
fn summary(message: &str) -> String {
    if message.contains("Caused by:") {
        return crate::error::root_cause(message);
    }
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorded messages are the process's: tests that record take
    /// turns with those that catch.
    static TURN: Mutex<()> = Mutex::new(());

    fn turn() -> std::sync::MutexGuard<'static, ()> {
        TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn a_panic_becomes_its_first_line_and_a_value_passes_through() {
        let _turn = turn();
        assert_eq!(catch(|| 7), Ok(7));
        let err = catch(|| -> u8 { panic!("checkpoint 3 is damaged\nsecond line") });
        assert_eq!(err, Err("checkpoint 3 is damaged".to_string()));
        let err = catch(|| -> u8 {
            panic!(
                "called `Result::unwrap()` on an `Err` value: An error happened during execution\n\
                 Caused by:\n  Several failures at once\nCaused by:\n  can't allocate buffer of \
                 size: 240000000\nNo backtrace available"
            )
        });
        let expected = "called `Result::unwrap()` on an `Err` value: An error happened during \
                        execution: can't allocate buffer of size: 240000000";
        assert_eq!(err, Err(expected.to_string()));
    }

    /// Records as a hook would, on this thread or as a device thread's.
    fn raise(text: &str, device: bool) {
        assert!(record_message(text.into(), device), "a catch is running");
    }

    /// A worker's panic is the failure's message and a handled one when the
    /// call goes on; a device thread's panic is neither, unless nothing else
    /// says why the call failed.
    #[test]
    fn device_thread_panics_are_the_last_resort() {
        let _turn = turn();
        let err = catch_handled(|| -> u8 {
            raise("autotune: a kernel failed\ndetails", true);
            raise("event store: disk full", false);
            panic!("Event store thread crashed")
        });
        assert_eq!(err, Err("event store: disk full".into()));
        let err = catch_handled(|| -> u8 {
            raise("autotune: a kernel failed", true);
            panic!("the read failed: out of memory")
        });
        assert_eq!(err, Err("the read failed: out of memory".into()));
        let err = catch_handled(|| -> u8 {
            raise("can't allocate buffer", true);
            std::panic::panic_any(3)
        });
        assert_eq!(err, Err("can't allocate buffer".into()));
        let went_on = catch_handled(|| {
            raise("autotune: a kernel failed", true);
            raise("a worker's panic, handled", false);
            5
        });
        assert_eq!(went_on, Ok((5, vec!["a worker's panic, handled".into()])));
    }

    #[test]
    fn cubecl_device_threads_are_known_by_name() {
        assert!(!on_device_thread());
        for (name, device) in [("DSD-4-8192", true), ("DSU-0-1", true), ("DS-x", false)] {
            let thread = std::thread::Builder::new().name(name.into());
            let answer = thread.spawn(on_device_thread).unwrap().join().unwrap();
            assert_eq!(answer, device, "{name}");
        }
    }
}
