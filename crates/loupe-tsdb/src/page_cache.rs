//! A bounded cache of decoded pages.
//!
//! A chart refreshed every few seconds asks for the same range at the same
//! width again and again, and its M4 read decodes the same boundary pages
//! each time; so do the charts of a compare view. Keeping decoded pages
//! (bounded by bytes, evicted by CLOCK-Pro in `quick_cache`) makes those
//! repeats cost a scan instead of a decode.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// Which page: segment, chunk, column (0 steps, 1 times, 2 values), page.
pub type PageKey = (u64, u32, u8, u32);

/// A decoded page; integers and floats both kept as their 64-bit patterns.
pub type PageBits = Arc<[u64]>;

#[derive(Clone)]
struct ByBytes;

impl Weighter<PageKey, PageBits> for ByBytes {
    fn weight(&self, _key: &PageKey, val: &PageBits) -> u64 {
        val.len() as u64 * 8 + 64
    }
}

/// Decoded pages shared by every segment of a database.
pub struct PageCache {
    cache: Option<Cache<PageKey, PageBits, ByBytes>>,
}

impl PageCache {
    /// A cache holding up to `bytes` of decoded pages; 0 disables it.
    pub fn new(bytes: u64) -> Self {
        let cache = (bytes > 0).then(|| {
            let items = (bytes / (512 * 8)).max(16) as usize;
            Cache::with_weighter(items, bytes, ByBytes)
        });
        Self { cache }
    }

    pub fn get(&self, key: &PageKey) -> Option<PageBits> {
        self.cache.as_ref()?.get(key)
    }

    pub fn insert(&self, key: PageKey, page: PageBits) {
        if let Some(c) = &self.cache {
            c.insert(key, page);
        }
    }

    /// Bytes held.
    pub fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("bytes", &self.weight())
            .finish()
    }
}
