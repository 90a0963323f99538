//! Lines for the user that never stop the program: `println!` panics when
//! stdout cannot be written (`unet train | head -1` once `head` has its
//! line, a full disk behind `> log`), which would end a run, or leave
//! burn-train waiting on a thread that died. Here a failed write drops
//! the line and the work goes on.

use std::fmt::Arguments;
use std::io::Write;

/// Writes `line` and a newline to stdout; a failed write is dropped.
pub fn out(line: Arguments) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"));
    let _ = stdout.flush();
}

/// Writes `line` and a newline to stderr; a failed write is dropped.
pub fn err(line: Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `println!` through [`out`]: never panics.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::out(format_args!($($arg)*))
    };
}

/// `eprintln!` through [`err`]: never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::err(format_args!($($arg)*))
    };
}
