//! API tokens: scoped to one project and one role, stored as SHA-256 only.
//!
//! A token is `loupe_` + 52 lowercase base-32 characters (32 random bytes
//! from the OS). Its first [`ID_CHARS`] characters are the token's public
//! id: verification finds the row by id, then compares SHA-256 hashes in
//! constant time. The id gives away 60 of the 256 random bits, leaving 196
//! secret; the full token is never stored, logged or returned again.

use data_encoding::BASE32_NOPAD;
use loupe_model::Role;
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::projects::ensure_project;
use crate::store::{MetaStore, now};
use crate::validate;

const PREFIX: &str = "loupe_";
/// Base-32 characters in a token after the prefix (32 bytes, no padding).
const BODY_CHARS: usize = 52;
/// Leading body characters that form the public id.
const ID_CHARS: usize = 12;
/// `last_used` is rewritten at most this often per token: verification is
/// on every request's path and a write costs an fsync.
const LAST_USED_GRANULARITY_S: f64 = 60.0;

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub project: String,
    pub role: Role,
    pub label: String,
    /// Unix seconds.
    pub created: f64,
    /// Unix seconds, to within a minute; `None` if never used.
    pub last_used: Option<f64>,
}

impl MetaStore {
    /// Creates a token for `project` (created on demand) with `role`.
    /// Returns its info and the secret token text, which exists only in this
    /// return value: show it once.
    pub fn create_token(
        &self,
        project: &str,
        role: Role,
        label: &str,
    ) -> Result<(TokenInfo, String)> {
        validate::project_name(project)?;
        if !label.is_empty() {
            validate::label("token label", label, validate::MAX_NAME_BYTES)?;
        }
        let created = now();
        self.write(|tx| {
            let project_id = ensure_project(tx, project, created)?;
            loop {
                let secret = new_secret();
                let id = token_id(&secret).expect("fresh tokens are well formed");
                let inserted = tx.execute(
                    "INSERT INTO token (id, project, role, label, hash, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                    params![
                        id,
                        project_id,
                        role.as_str(),
                        label,
                        hash(&secret).as_slice(),
                        created
                    ],
                )?;
                // An id collision (2^-60 per pair) just draws again.
                if inserted == 1 {
                    let info = TokenInfo {
                        id: id.to_string(),
                        project: project.to_string(),
                        role,
                        label: label.to_string(),
                        created,
                        last_used: None,
                    };
                    return Ok((info, secret));
                }
            }
        })
    }

    /// The token's info if `secret` is a live token, else `None` (malformed,
    /// unknown, revoked or wrong). Errors only when the database fails.
    pub fn verify_token(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let Some(id) = token_id(secret) else {
            return Ok(None);
        };
        let found = self.read(|tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT t.id, p.name, t.role, t.label, t.created, t.last_used, t.hash
                     FROM token t JOIN project p ON p.id = t.project WHERE t.id = ?1",
                )?
                .query_row([id], |r| Ok((token_row(r)?, r.get::<_, Vec<u8>>(6)?)))
                .optional()?)
        })?;
        let Some((info, stored)) = found else {
            return Ok(None);
        };
        let info = info?;
        // Constant time: how much of the hash matched must not show in the
        // response time. (The id lookup above leaks only the public id.)
        let matches: bool = hash(secret).as_slice().ct_eq(stored.as_slice()).into();
        if !matches {
            return Ok(None);
        }
        let now = now();
        if info
            .last_used
            .is_none_or(|t| now - t >= LAST_USED_GRANULARITY_S)
        {
            // Best effort: skipped when a write is in progress (a request must
            // not queue behind ingestion for bookkeeping), and a failure here
            // does not fail a valid authentication; the next use retries.
            let _ = self.try_write(|tx| {
                tx.execute(
                    "UPDATE token SET last_used = ?2 WHERE id = ?1",
                    params![info.id, now],
                )?;
                Ok(())
            });
        }
        Ok(Some(info))
    }

    /// The project's tokens, oldest first.
    pub fn list_tokens(&self, project: &str) -> Result<Vec<TokenInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT t.id, p.name, t.role, t.label, t.created, t.last_used
                 FROM token t JOIN project p ON p.id = t.project
                 WHERE p.name = ?1 ORDER BY t.created, t.id",
            )?;
            let rows = stmt
                .query_map([project], token_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().collect()
        })
    }

    /// Revokes (deletes) a token, whatever its project: for the operator's
    /// CLI. The API should use [`revoke_token_in`](Self::revoke_token_in).
    pub fn revoke_token(&self, id: &str) -> Result<()> {
        self.revoke(None, id)
    }

    /// Revokes a token of `project` only: an admin of one project cannot
    /// revoke another project's tokens by guessing ids (`NotFound` instead).
    pub fn revoke_token_in(&self, project: &str, id: &str) -> Result<()> {
        self.revoke(Some(project), id)
    }

    fn revoke(&self, project: Option<&str>, id: &str) -> Result<()> {
        self.write(|tx| {
            let deleted = tx.execute(
                "DELETE FROM token WHERE id = ?1
                 AND (?2 IS NULL OR project = (SELECT id FROM project WHERE name = ?2))",
                params![id, project],
            )?;
            if deleted == 0 {
                return Err(Error::not_found("token", id));
            }
            Ok(())
        })
    }
}

/// `loupe_` + base32(32 random bytes from the OS), lowercase.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let body = BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
    debug_assert_eq!(body.len(), BODY_CHARS);
    format!("{PREFIX}{body}")
}

/// The public id of a well-formed token, or `None`.
fn token_id(secret: &str) -> Option<&str> {
    let body = secret.strip_prefix(PREFIX)?;
    let well_formed = body.len() == BODY_CHARS
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    well_formed.then(|| &body[..ID_CHARS])
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Columns `id, project name, role, label, created, last_used`.
fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TokenInfo>> {
    let role: String = r.get(2)?;
    let info = match role.parse::<Role>() {
        Ok(role) => Ok(TokenInfo {
            id: r.get(0)?,
            project: r.get(1)?,
            role,
            label: r.get(3)?,
            created: r.get(4)?,
            last_used: r.get(5)?,
        }),
        Err(e) => Err(Error::Corrupt(format!("stored token role: {e}"))),
    };
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_well_formed_and_distinct() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + BODY_CHARS);
        assert_eq!(token_id(&a), Some(&a[6..18]));
        assert_eq!(token_id("loupe_short"), None);
        assert_eq!(token_id(&a.to_uppercase()), None);
        assert_eq!(token_id(&a.replacen("loupe_", "loupx_", 1)), None);
        let mut wrong_char = a.clone();
        wrong_char.pop();
        wrong_char.push('1');
        assert_eq!(token_id(&wrong_char), None);
    }
}
