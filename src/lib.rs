//! Umbrella crate: re-exports the workspace's libraries.
pub use layers;
pub use unet;
