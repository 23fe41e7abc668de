//! `run.json`: what the SDK wrote about the run when it started (and how
//! it ended, when it did). Only the fields an upload needs are read.

use std::fs;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{RUN_INFO_FILE, Result, SpoolError, io_error};

/// The parts of `run.json` an upload uses.
#[derive(Debug, Deserialize)]
pub struct RunInfo {
    /// The run's id.
    pub id: String,
    /// The server the run was started with.
    #[serde(default)]
    pub server: Option<String>,
    /// The body that creates (or resumes) the run, as written.
    #[serde(default)]
    create: Option<Box<RawValue>>,
    /// How the run ended, when its process said so before exiting.
    #[serde(default)]
    pub final_status: Option<String>,
}

impl RunInfo {
    /// Reads `dir/run.json`.
    pub fn read(dir: &Path) -> Result<RunInfo> {
        let path = dir.join(RUN_INFO_FILE);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| SpoolError::RunInfo { path, source })
    }

    /// The body that creates the run: `create` when it is an object, else
    /// `{"id": …}` (the server fills in the rest).
    pub fn create_body(&self) -> Vec<u8> {
        match &self.create {
            Some(c) if c.get().starts_with('{') => c.get().as_bytes().to_vec(),
            _ => serde_json::to_vec(&serde_json::json!({ "id": self.id }))
                .expect("a string serializes"),
        }
    }
}
