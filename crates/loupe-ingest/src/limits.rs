//! How much one request may carry. The server builds one [`Limits`] from its
//! configuration and passes it to every decoder.

use loupe_model::MAX_NAME_BYTES;

/// Per-request limits. Every decoder stops at the first limit crossed, so a
/// hostile request costs at most about these amounts of memory and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes, after decompression. Default 64 MiB.
    pub max_body_bytes: usize,
    /// Most series in one metrics request. Default 10 000.
    pub max_series_per_request: usize,
    /// Most points (all series together) in one metrics request. Default 5 000 000.
    pub max_points_per_request: usize,
    /// Longest series name, in bytes. Default 256; never more than
    /// [`loupe_model::MAX_NAME_BYTES`], which the store enforces anyway.
    /// Attribute names of log records share this limit.
    pub max_name_bytes: usize,
    /// Deepest JSON nesting (objects and arrays, the outermost object is 1).
    /// Default 64. serde_json refuses beyond 127 whatever this says.
    pub max_json_depth: usize,
    /// Most records in one logs request. Default 100 000.
    pub max_log_records_per_request: usize,
    /// Longest log text, in bytes. Default 65 536.
    pub max_log_text_bytes: usize,
    /// Most attributes on one log record. Default 64.
    pub max_attributes: usize,
    /// Longest attribute value, in bytes. Default 4 096: attributes are for
    /// short facts to filter on; long content belongs in the text.
    pub max_attribute_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_series_per_request: 10_000,
            max_points_per_request: 5_000_000,
            max_name_bytes: MAX_NAME_BYTES,
            max_json_depth: 64,
            max_log_records_per_request: 100_000,
            max_log_text_bytes: 64 << 10,
            max_attributes: 64,
            max_attribute_value_bytes: 4 << 10,
        }
    }
}

impl Limits {
    /// The name limit actually applied: a longer name would only be refused
    /// later by the store, after the request was acknowledged as valid.
    pub(crate) fn name_bytes(&self) -> usize {
        self.max_name_bytes.min(MAX_NAME_BYTES)
    }
}
