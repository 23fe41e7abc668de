//! Baselines from a project's own history: a run is compared, step for
//! step, with the healthy finished runs of the same project and *config
//! family* — regression testing, done continuously.
//!
//! - [`family`]: which runs are alike (the config keys that shape a curve)
//!   and how two configs differ.
//! - [`envelope`]: per metric and step bucket, what the baseline runs did
//!   (min, max, median, a robust spread).
//! - [`watch`]: a run's points against its envelopes, as findings.
//! - `cause`: the cause rule "worse than this project's previous runs".
//!
//! Like the rest of the crate this does no IO: the server reads the
//! baseline runs from its stores and hands the envelopes over
//! ([`crate::Diagnoser::set_baseline`]).

mod cause;
pub mod envelope;
pub mod family;
pub mod watch;

pub(crate) use cause::regression_cause;
pub use envelope::{Envelope, EnvelopeBucket, EnvelopeBuilder};
pub use family::{ConfigChange, FamilySignature, config_changes, family_of};
pub use watch::{BaselineWatch, ClosestRun, RunBaseline};

use serde::{Deserialize, Serialize};

use crate::finding::SeriesRole;

/// Settings of the baseline comparison (`baseline.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    pub enabled: bool,
    /// Config keys that shape a curve. Two runs are of one family when
    /// their flattened configs agree on every path that has one of these
    /// as a segment (`model`, `model.name`, `optimizer.betas`…), compared
    /// case-insensitively. Keys not listed (seeds, run names, output
    /// directories, the learning rate) may differ: a changed learning rate
    /// is a regression to explain, not another experiment.
    pub family_keys: Vec<String>,
    /// Paths with one of these segments are neither family keys nor worth
    /// naming in a config diff (they differ between any two runs).
    pub ignore_keys: Vec<String>,
    /// At most this many baseline runs, newest first.
    pub max_runs: usize,
    /// A step bucket is judged only where at least this many baseline runs
    /// have points.
    pub min_runs: usize,
    /// Step buckets across the baseline runs' longest run.
    pub buckets: u32,
    /// Robust z-score (against the baseline median and spread) beyond which,
    /// and beyond every baseline run, a bucket deviates.
    pub z: f64,
    /// Consecutive deviating buckets before a finding.
    pub persist_buckets: u32,
    /// The spread is at least this fraction of the baseline median, so
    /// that three nearly identical runs do not make every wiggle news.
    pub relative_floor: f64,
    /// The server re-reads a family's envelopes at most this often.
    pub refresh_s: f64,
    /// Series compared per run (loss, throughput and step time series).
    pub max_series: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        let keys = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        BaselineConfig {
            enabled: true,
            family_keys: keys(&[
                "model",
                "model_name",
                "model_name_or_path",
                "model_type",
                "arch",
                "architecture",
                "dataset",
                "dataset_name",
                "dataset_config_name",
                "data",
                "data_path",
                "train_file",
                "batch_size",
                "train_batch_size",
                "per_device_train_batch_size",
                "global_batch_size",
                "micro_batch_size",
                "gradient_accumulation_steps",
                "optimizer",
                "optim",
                "seq_len",
                "max_seq_length",
                "block_size",
                "hidden_size",
                "num_layers",
                "n_layer",
                "num_hidden_layers",
            ]),
            ignore_keys: keys(&[
                "seed",
                "data_seed",
                "run_name",
                "output_dir",
                "logging_dir",
                "run_id",
                "hub_model_id",
                "tags",
                "notes",
            ]),
            max_runs: 10,
            min_runs: 2,
            buckets: 200,
            z: 3.0,
            persist_buckets: 2,
            relative_floor: 0.05,
            refresh_s: 300.0,
            max_series: 16,
        }
    }
}

/// Which series are compared with the baseline: the training curves whose
/// bad direction is known.
pub fn compared_role(role: SeriesRole) -> bool {
    matches!(
        role,
        SeriesRole::Loss | SeriesRole::Throughput | SeriesRole::StepTime
    )
}
