//! The time-driven checks: what can only be seen from the clock and from
//! many series at once, run by [`Diagnoser::tick`](crate::Diagnoser::tick)
//! over the diagnoser's state (the per-series detectors of
//! [`crate::detect`] see one series at a time, point by point).
//!
//! - [`stall`]: a run whose step stopped advancing while it still reports.
//! - [`silence`]: a series of a live run that stopped arriving.
//! - [`cohort`]: a member of a group (rank, replica, host) apart from the
//!   others at the same time.
//!
//! **Invariants:** each check walks runs, sources and series in name order
//! (ordered maps), so the same input gives the same findings in the same
//! order whatever order runs were registered or fed in; none keeps state
//! beyond the diagnoser's except the cohort persistence counts, bounded by
//! the members apart.

pub(crate) mod cohort;
pub(crate) mod silence;
pub(crate) mod stall;
