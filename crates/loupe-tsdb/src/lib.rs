//! Loupe's embedded time-series engine.

pub mod codec;
mod error;

pub use error::{Error, Result};
