//! What a query can fail with, and the Prometheus `errorType` each one is.

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not PromQL, or not of a type the query allows.
    #[error("{0}")]
    Parse(String),
    /// Evaluation refused the data (many-to-many matching, duplicate label sets, …).
    #[error("{0}")]
    Eval(String),
    /// More samples than [`crate::EngineOptions::max_samples`] would be loaded.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran past [`crate::EngineOptions::timeout`].
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The series source failed.
    #[error("reading series: {0}")]
    Source(#[from] crate::SourceError),
}

/// Prometheus' `errorType` values that this engine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Internal,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
        }
    }
}

impl Error {
    /// The `errorType` Prometheus answers this failure with.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Error::Parse(_) => ErrorType::BadData,
            Error::Eval(_) | Error::TooManySamples => ErrorType::Execution,
            Error::Timeout(_) => ErrorType::Timeout,
            Error::Source(_) => ErrorType::Internal,
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
