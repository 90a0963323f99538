//! The library behind the `unet` program: data (the synthetic generator,
//! image folders, augmentation, the train/validation split) and, as they
//! land, training, prediction and evaluation.
#![warn(missing_docs)]

pub mod data;
