//! Runs a file of PyTorch reference cases through the layers: convolutions
//! (`conv-golden/1`), batch norm (`bn-golden/1`) or max pooling
//! (`pool-golden/1`), told apart by the file.
//!
//! ```text
//! cargo run -p layers --example conformance -- FILE [--backend flex|ndarray|wgpu|vulkan] [--upconv]
//!     [--precision f32|f16|bf16] [--tolerance T]
//! ```
//!
//! `--precision` runs convolution cases with the input and output gradient
//! in that type (as mixed-precision training runs the layers); `--tolerance`
//! compares with `|got - ref| <= T + T |ref|` (default 1e-4).
//! Prints one line per failing case and tensor, then `N passed, M failed`;
//! exits with status 1 if any case failed, 2 on a usage or file error.

use std::process::ExitCode;

use conformance::{AnyGolden, Implementation, Tolerance, load_any, run_any, run_in};
use unet_train::{BackendKind, Precision};

/// What the command line asks for.
struct Request {
    file: String,
    backend: BackendKind,
    implementation: Implementation,
    precision: Precision,
    tolerance: Tolerance,
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(request) => {
            let golden = match load_any(&request.file) {
                Ok(golden) => golden,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(2);
                }
            };
            let device = request.backend.device();
            let report = match (&golden, request.precision) {
                (AnyGolden::Conv(file), precision) => run_in(
                    file,
                    &device,
                    request.implementation,
                    request.tolerance,
                    precision.dtype(),
                ),
                (_, Precision::F32) => {
                    run_any(&golden, &device, request.implementation, request.tolerance)
                }
                (_, precision) => {
                    eprintln!(
                        "error: --precision {precision}: convolution files only (conv-golden/1)"
                    );
                    return ExitCode::from(2);
                }
            };
            for line in report.failure_lines() {
                println!("{line}");
            }
            println!("{}", report.summary());
            if report.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "usage: conformance FILE [--backend flex|ndarray|wgpu|vulkan] [--upconv] \
                 [--precision f32|f16|bf16] [--tolerance T]"
            );
            ExitCode::from(2)
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Request, String> {
    let (mut file, mut backend, mut implementation) =
        (None, BackendKind::Flex, Implementation::Native);
    let (mut precision, mut tolerance) = (Precision::F32, Tolerance::default());
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--backend" => backend = value("--backend")?.parse().map_err(|e| format!("{e}"))?,
            "--precision" => {
                precision = value("--precision")?.parse().map_err(|e| format!("{e}"))?
            }
            "--tolerance" => {
                let text = value("--tolerance")?;
                let t: f64 = text
                    .parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite() && *t >= 0.0)
                    .ok_or(format!("--tolerance {text}: not a number at least 0"))?;
                tolerance = Tolerance { abs: t, rel: t };
            }
            "--upconv" => implementation = Implementation::UpConv,
            flag if flag.starts_with("--") => return Err(format!("unknown option '{flag}'")),
            path if file.is_none() => file = Some(path.to_string()),
            extra => return Err(format!("unexpected argument '{extra}'")),
        }
    }
    Ok(Request {
        file: file.ok_or("no FILE given")?,
        backend,
        implementation,
        precision,
        tolerance,
    })
}
