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

use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls of [`catch`] running now.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// The first panic message recorded by [`record`] while one ran.
static FIRST: Mutex<Option<String>> = Mutex::new(None);

/// Runs `f`; a panic inside it becomes `Err` with the first line of the
/// first panic message seen meanwhile (or of the panic itself).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    if ACTIVE.fetch_add(1, Ordering::SeqCst) == 0 {
        slot().take();
    }
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        let own = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        first_line(&slot().take().unwrap_or(own))
    })
}

/// For a panic hook: records the panic's message when a [`catch`] is
/// running, and says so (the hook then need not print it).
pub fn record(info: &PanicHookInfo) -> bool {
    if ACTIVE.load(Ordering::SeqCst) == 0 {
        return false;
    }
    let message = info
        .payload()
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| info.to_string());
    slot().get_or_insert(message);
    true
}

fn slot() -> std::sync::MutexGuard<'static, Option<String>> {
    FIRST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
