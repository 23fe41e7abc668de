//! Paging a series listing: the page size a request asks for and the
//! opaque cursor that resumes after the last series of a page.
//!
//! One answer with every series of a million-series run took 15 s and
//! peaked at 3.8 GB; a page is bounded by `limit`, so a request holds one
//! page of keys and summaries whatever the run's size. The cursor is the
//! last key's encoded form in hex: listings are ordered by key, so the
//! next page is the keys after it, and a series added or removed while a
//! client pages cannot make another be skipped or listed twice.

use loupe_api::{SERIES_PAGE_DEFAULT, SERIES_PAGE_MAX};
use loupe_model::SeriesKey;

use crate::error::{ApiError, ApiResult};

/// A page request: how many series, after which key.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<SeriesKey>,
}

impl PageRequest {
    /// Reads `limit` (1 to [`SERIES_PAGE_MAX`]) and `cursor`; a value out
    /// of range or a cursor this server did not give is a `400` naming it.
    pub fn parse(limit: Option<usize>, cursor: Option<&str>) -> ApiResult<PageRequest> {
        let limit = limit.unwrap_or(SERIES_PAGE_DEFAULT);
        if !(1..=SERIES_PAGE_MAX).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("limit: must be 1 to {SERIES_PAGE_MAX}, not {limit}"),
            ));
        }
        let after = cursor.map(decode).transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// The cursor that resumes after `key`.
pub fn cursor_after(key: &SeriesKey) -> String {
    key.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(cursor: &str) -> ApiResult<SeriesKey> {
    let bad = || ApiError::bad_request("invalid_request", "cursor: not one this server gave");
    if cursor.is_empty() || !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    SeriesKey::from_bytes(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_to_its_key() {
        let key = SeriesKey::new("train/loss", [("run", "r1"), ("gpu", "0")]).unwrap();
        let p = PageRequest::parse(None, Some(&cursor_after(&key))).unwrap();
        assert_eq!(p.after, Some(key));
        assert_eq!(p.limit, SERIES_PAGE_DEFAULT);
    }

    #[test]
    fn bad_cursors_and_limits_are_refused_by_name() {
        for c in ["", "zz", "abc", "é1", "00"] {
            let e = PageRequest::parse(None, Some(c)).unwrap_err();
            assert!(e.message.starts_with("cursor:"), "{c}: {}", e.message);
        }
        for l in [0, SERIES_PAGE_MAX + 1] {
            let e = PageRequest::parse(Some(l), None).unwrap_err();
            assert!(e.message.starts_with("limit:"), "{l}: {}", e.message);
        }
    }
}
