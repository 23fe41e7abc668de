//! Label names with a meaning across Loupe. A series of a run carries
//! `run=ID`; the API reserves `run` and `project`, which the server sets
//! itself from the request's path and token.

/// The run a series belongs to.
pub const RUN: &str = "run";
/// The project a series or alert belongs to.
pub const PROJECT: &str = "project";
/// The host a series or alert is about.
pub const HOST: &str = "host";
/// The distributed job (a run's group).
pub const GROUP: &str = "group";

/// Labels a client may not set on a series.
pub const RESERVED: [&str; 2] = [RUN, PROJECT];
