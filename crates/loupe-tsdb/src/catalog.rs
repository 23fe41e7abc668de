//! Series keys and their ids, kept compactly.
//!
//! A GPU fleet has hundreds of thousands of series that sit idle between
//! scrapes, so each key is held once, in its encoded byte form
//! ([`SeriesKey::to_bytes`]), and the key → id direction is a hash table of
//! bare ids that hashes through those bytes. The `(label, value)` index costs more (776 B per idle series in all, measured).

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use loupe_model::{LabelMatch, SeriesKey, SeriesMatcher};

use crate::types::SeriesId;

/// Maps series keys to ids and back.
#[derive(Default)]
pub struct Catalog {
    by_id: HashMap<SeriesId, Box<[u8]>>,
    by_key: HashTable<SeriesId>,
    hasher: std::hash::RandomState,
    next_id: SeriesId,
    /// `(label, value)` → the ids of the series carrying it, so a lookup by
    /// run or host reads its own series, not every key in the catalog.
    by_label: HashMap<(Box<str>, Box<str>), Vec<SeriesId>>,
    /// Series whose key is not yet in a durable WAL record: every append
    /// that writes them carries their key until one such append succeeds.
    undurable: HashSet<SeriesId>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("series", &self.by_id.len())
            .field("next_id", &self.next_id)
            .finish()
    }
}

/// Hashes the pieces of a key, in the order of its encoded form.
fn hash_key(state: &std::hash::RandomState, key: &SeriesKey) -> u64 {
    let mut h = state.build_hasher();
    h.write(key.name().as_bytes());
    h.write_u8(0);
    for (k, v) in key.labels() {
        h.write(k.as_bytes());
        h.write_u8(0);
        h.write(v.as_bytes());
        h.write_u8(0);
    }
    h.finish()
}

/// Hashes an encoded key the same way [`hash_key`] hashes the decoded one.
fn hash_encoded(state: &std::hash::RandomState, bytes: &[u8]) -> u64 {
    let mut h = state.build_hasher();
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    for piece in body.split(|&b| b == 0) {
        h.write(piece);
        h.write_u8(0);
    }
    h.finish()
}

/// True when `bytes` is the encoded form of `key`, without allocating.
fn encoded_eq(bytes: &[u8], key: &SeriesKey) -> bool {
    let mut rest = bytes;
    let mut take = |s: &str| -> bool {
        let n = s.len();
        if rest.len() > n && &rest[..n] == s.as_bytes() && rest[n] == 0 {
            rest = &rest[n + 1..];
            true
        } else {
            false
        }
    };
    if !take(key.name()) {
        return false;
    }
    for (k, v) in key.labels() {
        if !take(k) || !take(v) {
            return false;
        }
    }
    rest.is_empty()
}

impl Catalog {
    pub fn new(next_id: SeriesId) -> Self {
        Self {
            next_id: next_id.max(1),
            ..Default::default()
        }
    }

    pub fn get(&self, key: &SeriesKey) -> Option<SeriesId> {
        let h = hash_key(&self.hasher, key);
        self.by_key
            .find(h, |id| encoded_eq(&self.by_id[id], key))
            .copied()
    }

    /// The key of a series.
    pub fn key(&self, id: SeriesId) -> Option<SeriesKey> {
        self.by_id
            .get(&id)
            .map(|b| SeriesKey::from_bytes(b).expect("catalog holds only valid keys"))
    }

    /// The encoded key of a series, as the WAL and segments store it.
    pub fn key_bytes(&self, id: SeriesId) -> Option<&[u8]> {
        self.by_id.get(&id).map(|b| &b[..])
    }

    /// Registers a key with a fresh id; its key must go into the WAL.
    pub fn insert_new(&mut self, key: SeriesKey) -> SeriesId {
        let id = self.next_id;
        self.next_id += 1;
        self.insert(id, key);
        self.undurable.insert(id);
        id
    }

    /// Registers a key under an id read back from disk.
    pub fn insert(&mut self, id: SeriesId, key: SeriesKey) {
        if self.by_id.contains_key(&id) {
            return;
        }
        if let Some(old) = self.get(&key) {
            self.remove(old);
        }
        let h = hash_key(&self.hasher, &key);
        for (k, v) in key.labels() {
            self.by_label
                .entry((k.as_str().into(), v.as_str().into()))
                .or_default()
                .push(id);
        }
        self.by_id.insert(id, key.to_bytes().into_boxed_slice());
        let (by_id, hasher) = (&self.by_id, &self.hasher);
        self.by_key
            .insert_unique(h, id, |i| hash_encoded(hasher, &by_id[i]));
        self.next_id = self.next_id.max(id + 1);
    }

    pub fn remove(&mut self, id: SeriesId) {
        self.undurable.remove(&id);
        if let Some(bytes) = self.by_id.get(&id) {
            let h = hash_encoded(&self.hasher, bytes);
            if let Ok(entry) = self.by_key.find_entry(h, |i| *i == id) {
                entry.remove();
            }
            let key = SeriesKey::from_bytes(bytes).expect("catalog holds only valid keys");
            for (k, v) in key.labels() {
                let pair = (Box::<str>::from(k.as_str()), Box::<str>::from(v.as_str()));
                if let Some(ids) = self.by_label.get_mut(&pair) {
                    ids.retain(|i| *i != id);
                    if ids.is_empty() {
                        self.by_label.remove(&pair);
                    }
                }
            }
            self.by_id.remove(&id);
        }
    }

    /// True while no append carrying this series' key has reached the WAL.
    pub fn is_undurable(&self, id: SeriesId) -> bool {
        self.undurable.contains(&id)
    }

    /// Notes that a WAL record carrying these keys is durable.
    pub fn mark_durable(&mut self, ids: &[SeriesId]) {
        for id in ids {
            self.undurable.remove(id);
        }
    }

    pub fn next_id(&self) -> SeriesId {
        self.next_id
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// How many series carry each value of `label`: read from the label
    /// index, so it costs one step per distinct value, not per series.
    pub fn count_by_label(&self, label: &str) -> Vec<(String, usize)> {
        self.by_label
            .iter()
            .filter(|((name, _), _)| &**name == label)
            .map(|((_, value), ids)| (value.to_string(), ids.len()))
            .collect()
    }

    /// Series whose keys match, ordered by key.
    ///
    /// A `label == value` condition narrows the search to that label's
    /// series through the index; otherwise every key is read.
    pub fn matching(&self, m: &SeriesMatcher) -> Vec<(SeriesId, SeriesKey)> {
        let indexed = self.indexed(m);
        let decode = |id: &SeriesId, b: &[u8]| (*id, SeriesKey::from_bytes(b).expect("valid key"));
        let candidates: Vec<(SeriesId, SeriesKey)> = match indexed {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.by_id.get(id).map(|b| decode(id, b)))
                .collect(),
            None => self.by_id.iter().map(|(id, b)| decode(id, b)).collect(),
        };
        let mut out: Vec<(SeriesId, SeriesKey)> = candidates
            .into_iter()
            .filter(|(_, k)| m.matches(k))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// One page of [`Catalog::matching`]: the first `limit` matching keys
    /// ordered after `after` (an encoded key), and whether more follow.
    ///
    /// Memory is bounded by the page, not by the series matched: the
    /// candidates are compared in their encoded form (whose byte order is
    /// the key order: NUL ends every piece and sorts below any character)
    /// and only the `limit + 1` smallest are kept, so a run with a million
    /// series decodes about a page of keys, not a million.
    pub fn matching_page(
        &self,
        m: &SeriesMatcher,
        after: Option<&[u8]>,
        limit: usize,
    ) -> (Vec<(SeriesId, SeriesKey)>, bool) {
        let limit = limit.max(1);
        let mut keep: BinaryHeap<(&[u8], SeriesId)> = BinaryHeap::with_capacity(limit + 2);
        let candidates: Box<dyn Iterator<Item = (SeriesId, &[u8])> + '_> = match self.indexed(m) {
            Some(ids) => Box::new(
                ids.iter()
                    .filter_map(|id| self.by_id.get(id).map(|b| (*id, &b[..]))),
            ),
            None => Box::new(self.by_id.iter().map(|(id, b)| (*id, &b[..]))),
        };
        for (id, bytes) in candidates {
            if after.is_some_and(|a| bytes <= a) {
                continue;
            }
            if keep.len() > limit && keep.peek().is_some_and(|(top, _)| bytes >= *top) {
                continue;
            }
            let key = SeriesKey::from_bytes(bytes).expect("catalog holds only valid keys");
            if !m.matches(&key) {
                continue;
            }
            keep.push((bytes, id));
            if keep.len() > limit + 1 {
                keep.pop();
            }
        }
        let mut page = keep.into_sorted_vec();
        let more = page.len() > limit;
        page.truncate(limit);
        let page = page
            .into_iter()
            .map(|(b, id)| {
                (
                    id,
                    SeriesKey::from_bytes(b).expect("catalog holds only valid keys"),
                )
            })
            .collect();
        (page, more)
    }

    /// The ids of the series carrying the matcher's first `label == value`
    /// condition, from the index; `None` when it has no such condition.
    fn indexed(&self, m: &SeriesMatcher) -> Option<&[SeriesId]> {
        m.all.iter().find_map(|c| match c {
            LabelMatch::Eq { label, value } => Some(
                self.by_label
                    .get(&(label.as_str().into(), value.as_str().into()))
                    .map_or(&[][..], Vec::as_slice),
            ),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_key_order_and_visit_every_match_once() {
        let mut c = Catalog::new(1);
        // Inserted out of order, with names that are prefixes of others.
        let names = ["b", "a", "ab", "a/b", "c", "aa", "a0", "z", "m", "a b"];
        for n in names {
            c.insert_new(SeriesKey::new(n, [("run", "r")]).unwrap());
            c.insert_new(SeriesKey::new(n, [("run", "other")]).unwrap());
        }
        let m = SeriesMatcher::any().label_eq("run", "r");
        let all: Vec<SeriesKey> = c.matching(&m).into_iter().map(|(_, k)| k).collect();
        assert_eq!(all.len(), names.len());
        let mut seen = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (page, more) = c.matching_page(&m, after.as_deref(), 3);
            assert!(page.len() <= 3);
            seen.extend(page.iter().map(|(_, k)| k.clone()));
            after = page.last().map(|(_, k)| k.to_bytes());
            if !more {
                break;
            }
        }
        assert_eq!(seen, all, "pages concatenate to the ordered listing");
        // Without an indexed condition every key is scanned, still in order.
        let (page, more) = c.matching_page(&SeriesMatcher::any().name_prefix("a"), None, 100);
        assert!(!more);
        assert_eq!(page.len(), 2 * 6);
        assert!(page.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn finds_keys_both_ways_and_forgets_removed_ones() {
        let mut c = Catalog::new(1);
        let a = SeriesKey::new("loss", [("run", "a")]).unwrap();
        let b = SeriesKey::new("loss", [("run", "b")]).unwrap();
        let bare = SeriesKey::named("loss").unwrap();
        let ia = c.insert_new(a.clone());
        let ib = c.insert_new(b.clone());
        assert_ne!(ia, ib);
        assert_eq!(c.get(&a), Some(ia));
        assert_eq!(c.get(&b), Some(ib));
        assert_eq!(c.get(&bare), None);
        assert_eq!(c.key(ib), Some(b.clone()));
        assert!(c.is_undurable(ia));
        c.mark_durable(&[ia]);
        assert!(!c.is_undurable(ia));
        c.remove(ia);
        assert_eq!(c.get(&a), None);
        assert_eq!(c.get(&b), Some(ib));
        assert_eq!(c.len(), 1);
        let again = c.insert_new(a.clone());
        assert!(again > ib, "ids are never reused");
        let m = SeriesMatcher::any().name_eq("loss");
        assert_eq!(c.matching(&m).len(), 2);
        // Through the label index, including after a removal and a re-add.
        let by_run = |c: &Catalog, r: &str| c.matching(&SeriesMatcher::any().label_eq("run", r));
        assert_eq!(by_run(&c, "a"), vec![(again, a.clone())]);
        assert_eq!(by_run(&c, "b"), vec![(ib, b.clone())]);
        assert!(by_run(&c, "zzz").is_empty());
        c.remove(ib);
        assert!(by_run(&c, "b").is_empty());
    }

    #[test]
    fn encoded_comparison_is_exact() {
        let k = SeriesKey::new("a", [("b", "c")]).unwrap();
        assert!(encoded_eq(&k.to_bytes(), &k));
        let other = SeriesKey::new("a", [("b", "cd")]).unwrap();
        assert!(!encoded_eq(&other.to_bytes(), &k));
        assert!(!encoded_eq(&k.to_bytes(), &other));
        let s = std::hash::RandomState::new();
        assert_eq!(hash_key(&s, &k), hash_encoded(&s, &k.to_bytes()));
    }
}
