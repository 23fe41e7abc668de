//! Who is asking: a bearer token resolved to a project and a role.
//!
//! Tokens are checked by the metadata store, which keeps only their SHA-256
//! and compares in constant time. A token sees only its own project: another
//! project's runs answer 404, exactly as if they did not exist.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use loupe_model::Role;

use crate::counters::ServerMetrics;
use crate::error::ApiError;
use crate::state::{AuthMode, SharedState};

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `None`: every project (open mode).
    pub project: Option<String>,
    pub role: Role,
    /// Who this is, for what they record (feedback): the token's label (or
    /// id when it has none), `local` in open mode.
    pub who: String,
}

impl Principal {
    /// Fails unless the caller's role allows `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token's role ({}) does not allow this ({} needed)",
                self.role.as_str(),
                needed.as_str()
            )))
        }
    }

    /// True when the caller may see `project`.
    pub fn sees(&self, project: &str) -> bool {
        self.project.as_deref().is_none_or(|p| p == project)
    }

    /// The project a write goes to: the one asked for (which must be the
    /// token's own), else the token's, else `default`.
    pub fn write_project(&self, asked: Option<&str>) -> Result<String, ApiError> {
        match (asked, &self.project) {
            (Some(p), Some(mine)) if p != mine => Err(ApiError::forbidden(format!(
                "this token belongs to project {mine:?}, not {p:?}"
            ))),
            (Some(p), _) => Ok(p.to_string()),
            (None, Some(mine)) => Ok(mine.clone()),
            (None, None) => Ok("default".into()),
        }
    }

    /// The one project a read is about: as for writes, but another
    /// project's answers 404, as if it did not exist.
    pub fn read_project(&self, asked: Option<&str>) -> Result<String, ApiError> {
        match (asked, &self.project) {
            (Some(p), Some(mine)) if p != mine => Err(ApiError::not_found("project", p)),
            (Some(p), _) => Ok(p.to_string()),
            (None, Some(mine)) => Ok(mine.clone()),
            (None, None) => Ok("default".into()),
        }
    }

    /// A listing's project filter: `Some(None)` lists every project the
    /// caller sees, `Some(Some(p))` one project, `None` nothing (another
    /// project's, asked for with a scoped token: an empty listing).
    pub fn list_project(&self, asked: Option<&str>) -> Option<Option<String>> {
        match (asked, &self.project) {
            (Some(p), Some(mine)) if p != mine => None,
            (Some(p), _) => Some(Some(p.to_string())),
            (None, mine) => Some(mine.clone()),
        }
    }
}

impl FromRequestParts<SharedState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        if state.auth == AuthMode::Open {
            return Ok(Principal {
                project: None,
                role: Role::Admin,
                who: "local".into(),
            });
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(secret) = header.and_then(token_in_header) else {
            ServerMetrics::add(&state.metrics.auth_failures, 1);
            tracing::warn!(path = %parts.uri.path(), "request without a bearer token refused");
            return Err(ApiError::unauthorized(
                "this server requires a token: send `Authorization: Bearer <token>` (create one with `loupe token create`)",
            ));
        };
        let meta = state.clone();
        let secret = secret.trim().to_string();
        let found = tokio::task::spawn_blocking(move || meta.meta.verify_token(&secret))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if let (Some(t), Some(rate)) = (&found, &state.rate)
            && let Err(wait) = rate.take(&t.id, std::time::Instant::now())
        {
            state.metrics.limit_refused("rate_per_token");
            let limit = rate.limit();
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this token sent more than {} requests a second (burst {}; --rate-limit); retry after {:.1} s",
                    limit.per_s,
                    limit.burst,
                    wait.as_secs_f64()
                ),
            )
            .retry_after(wait));
        }
        match found {
            Some(t) => Ok(Principal {
                who: if t.label.trim().is_empty() {
                    format!("token {}", t.id)
                } else {
                    t.label
                },
                project: Some(t.project),
                role: t.role,
            }),
            None => {
                ServerMetrics::add(&state.metrics.auth_failures, 1);
                // Never log the token itself.
                tracing::warn!(path = %parts.uri.path(), "request with an unknown or revoked token refused");
                Err(ApiError::unauthorized("unknown or revoked token"))
            }
        }
    }
}

/// The token in an `Authorization` header: `Bearer <token>`, `Token <token>`
/// (what InfluxDB's clients and Telegraf send), or HTTP Basic with the
/// token as the password (InfluxDB 1.x clients; the user name is ignored).
fn token_in_header(h: &str) -> Option<String> {
    let (scheme, rest) = h.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = data_encoding::BASE64.decode(rest.trim().as_bytes()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

#[cfg(test)]
mod header_tests {
    use super::token_in_header;

    #[test]
    fn bearer_token_and_basic_schemes_carry_the_token() {
        assert_eq!(token_in_header("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token_in_header("Token abc").as_deref(), Some("abc"));
        assert_eq!(token_in_header("token  abc ").as_deref(), Some("abc"));
        // "telegraf:s3cret"
        assert_eq!(
            token_in_header("Basic dGVsZWdyYWY6czNjcmV0").as_deref(),
            Some("s3cret")
        );
        assert_eq!(token_in_header("Basic !!!"), None);
        assert_eq!(token_in_header("Digest abc"), None);
        assert_eq!(token_in_header("abc"), None);
    }
}
