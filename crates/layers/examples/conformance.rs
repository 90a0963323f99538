//! Runs a file of PyTorch reference cases through the layers: convolutions
//! (`conv-golden/1`) or batch norm (`bn-golden/1`), told apart by the file.
//!
//! ```text
//! cargo run -p layers --example conformance -- FILE [--backend flex|ndarray|wgpu] [--upconv]
//! ```
//!
//! Prints one line per failing case and tensor, then `N passed, M failed`;
//! exits with status 1 if any case failed, 2 on a usage or file error.

use std::process::ExitCode;

use conformance::{Implementation, Tolerance, load_any, run_any};
use unet_train::BackendKind;

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok((file, backend, implementation)) => {
            let golden = match load_any(&file) {
                Ok(golden) => golden,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(2);
                }
            };
            let report = run_any(
                &golden,
                &backend.device(),
                implementation,
                Tolerance::default(),
            );
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
            eprintln!("usage: conformance FILE [--backend flex|ndarray|wgpu] [--upconv]");
            ExitCode::from(2)
        }
    }
}

fn parse(
    mut args: impl Iterator<Item = String>,
) -> Result<(String, BackendKind, Implementation), String> {
    let (mut file, mut backend, mut implementation) =
        (None, BackendKind::Flex, Implementation::Native);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--backend" => {
                let name = args.next().ok_or("--backend needs a value")?;
                backend = name.parse().map_err(|err| format!("{err}"))?;
            }
            "--upconv" => implementation = Implementation::UpConv,
            flag if flag.starts_with("--") => return Err(format!("unknown option '{flag}'")),
            path if file.is_none() => file = Some(path.to_string()),
            extra => return Err(format!("unexpected argument '{extra}'")),
        }
    }
    Ok((file.ok_or("no FILE given")?, backend, implementation))
}
