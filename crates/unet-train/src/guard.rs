//! Panics inside the libraries this one calls (burn-train, CubeCL), turned
//! into errors at the boundary where they are called.
//!
//! [`catch`] runs a call and returns the first line of the first panic
//! message raised while it ran, on any thread: burn-train runs its event
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

use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Mutex;

/// What [`record`] keeps: the number the next message gets, the calls of
/// [`catch`] running, and the messages recorded while any ran.
struct Recorded {
    next: u64,
    active: usize,
    messages: Vec<(u64, String)>,
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

/// Runs `f`; a panic inside it becomes `Err` with the first line of the
/// first panic message recorded since it began (or of the panic itself).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let (value, handled) = catch_handled(f)?;
    print_handled(&handled);
    Ok(value)
}

/// Prints the panics a call handled ([`catch_handled`]) to stderr, one
/// line each.
pub fn print_handled(handled: &[String]) {
    for message in handled {
        eprintln!("internal error in a call that went on: {message}");
    }
}

/// [`catch`], returning with the value the first lines of the panics that
/// were recorded while `f` ran and that it handled, rather than printing them.
pub fn catch_handled<T>(f: impl FnOnce() -> T) -> Result<(T, Vec<String>), String> {
    let start = {
        let mut state = recorded();
        state.active += 1;
        state.next
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    let mine: Vec<String> = {
        let mut state = recorded();
        state.active -= 1;
        let mine = state
            .messages
            .iter()
            .filter(|(n, _)| *n >= start)
            .map(|(_, message)| message.clone())
            .collect();
        if state.active == 0 {
            state.messages.clear();
        }
        mine
    };
    match result {
        Ok(value) => Ok((value, mine.iter().map(|m| first_line(m)).collect())),
        Err(payload) => {
            let own = payload_text(payload.as_ref())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(first_line(mine.first().unwrap_or(&own)))
        }
    }
}

/// For a panic hook: records the panic's message when a [`catch`] is
/// running, and says so (the hook then need not print it).
pub fn record(info: &PanicHookInfo) -> bool {
    let mut state = recorded();
    if state.active == 0 {
        return false;
    }
    let message = payload_text(info.payload()).unwrap_or_else(|| info.to_string());
    let number = state.next;
    state.next += 1;
    state.messages.push((number, message));
    true
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}

fn first_line(message: &str) -> String {
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

    #[test]
    fn a_panic_becomes_its_first_line_and_a_value_passes_through() {
        assert_eq!(catch(|| 7), Ok(7));
        let err = catch(|| -> u8 { panic!("checkpoint 3 is damaged\nsecond line") });
        assert_eq!(err, Err("checkpoint 3 is damaged".to_string()));
    }
}
