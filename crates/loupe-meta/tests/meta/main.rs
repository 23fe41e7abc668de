//! The metadata store's behaviour through its public API, on real SQLite
//! files in temporary directories.

mod concurrency;
mod durability;
mod incidents;
mod list;
mod logs;
mod runs;
mod support;
mod tokens;
