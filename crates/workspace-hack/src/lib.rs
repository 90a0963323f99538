//! Empty: this crate exists for the features its manifest turns on (see
//! `Cargo.toml`).
