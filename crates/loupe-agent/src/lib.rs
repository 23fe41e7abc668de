//! Loupe's collectors and the machinery that ships what they collect.
//!
//! - [`HostCollector`] (`host.rs`): CPU, load, memory, disks, filesystems
//!   and network from `/proc` and `statvfs`.
//! - [`ProcessTreeSampler`] (`process.rs`): a process and its descendants.
//! - [`GpuCollector`] (`gpu.rs`): NVIDIA GPUs through NVML, loaded at run
//!   time, so the binary runs where there is no driver.
//! - [`DiskBuffer`] (`buffer.rs`): a bounded, crash-safe on-disk queue of
//!   request bodies.
//! - [`Spool`] (`spool.rs`): the reader of the Python SDK's offline spool
//!   (entries, acknowledgement marker, requests), for `loupe sync`.
//! - [`Sender`] (`sender.rs`): a background thread that POSTs bodies to the
//!   server, retries, spools to the [`DiskBuffer`] while the server is away
//!   and replays in order.
//! - [`IntervalPolicy`] (`adaptive.rs`): when to sample fast.
//! - [`run_agent`] (`agent.rs`): `loupe agent`'s loop.
//!
//! Every collector returns [`Sample`]s without a time; the caller stamps
//! one time per round.
//!
//! **Invariants:** no dependency on other Loupe crates (the agent talks to
//! the server over its public HTTP API only); nothing here panics on odd
//! `/proc` contents or network answers; the collection loop never waits on
//! the network.

pub mod adaptive;
pub mod agent;
pub mod batch;
pub mod buffer;
pub mod gpu;
pub mod host;
pub mod process;
mod procfs;
pub mod sample;
pub mod sender;
pub mod spool;
pub mod supervise;

pub use adaptive::{IntervalPolicy, LocalRules};
pub use agent::{AgentConfig, AgentSummary, hostname, run_agent};
pub use batch::BatchBuilder;
pub use buffer::{BufferError, DiskBuffer, Record, RecordId};
pub use gpu::{GpuCollector, GpuError};
pub use host::HostCollector;
pub use process::{ProcessSample, ProcessTreeSampler};
pub use sample::Sample;
pub use sender::{Sender, SenderConfig, SenderStats};
pub use spool::{Spool, SpoolError};

/// Errors of the agent as a whole.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("disk buffer: {0}")]
    Buffer(#[from] BufferError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot start the sender thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot install the signal handler: {0}")]
    Signal(std::io::Error),
}
