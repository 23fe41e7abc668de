//! What can go wrong with a request, and which failures are worth retrying.

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No answer: connection refused, a timeout, a broken connection.
    #[error("cannot reach the Loupe server at {server}: {why}")]
    Unreachable { server: String, why: String },
    /// The server answered with an error status. `code` and `message` are
    /// the API's (`{"error":{"code","message"}}`); for an answer in another
    /// shape, `code` is empty and `message` is its text (cut short).
    #[error("{}", if message.is_empty() { format!("the server answered {status}") } else { message.clone() })]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// A success whose body is not the JSON expected: most likely not a
    /// Loupe server (or not this version of it).
    #[error("the answer from {server} ({status}) is not Loupe's JSON: {why}")]
    NotLoupe {
        server: String,
        status: u16,
        why: String,
    },
    /// The request could not be built (a body that does not serialize,
    /// gzip failing).
    #[error("building the request: {0}")]
    Request(String),
}

impl Error {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { status, .. } => Some(*status),
            Error::NotLoupe { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same request may succeed later: no answer, a timeout
    /// (408), too many requests (429) or a server error (5xx). Any other
    /// refusal (a bad token, a malformed body) will be refused again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Refused { status, .. } => retryable_status(*status),
            Error::NotLoupe { .. } | Error::Request(_) => false,
        }
    }
}

/// Whether a refusal with this status may be accepted later: a timeout
/// (408), too many requests (429), a server error (5xx).
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..)
}
