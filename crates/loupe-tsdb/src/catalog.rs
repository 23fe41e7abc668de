//! Series keys and their ids.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use loupe_model::{SeriesKey, SeriesMatcher};

use crate::types::SeriesId;

/// Maps series keys to ids and back.
#[derive(Debug, Default)]
pub struct Catalog {
    by_key: HashMap<Arc<SeriesKey>, SeriesId>,
    by_id: HashMap<SeriesId, Arc<SeriesKey>>,
    next_id: SeriesId,
    /// Series whose key is not yet in a durable WAL record: every append
    /// that writes them carries their key until one such append succeeds.
    undurable: HashSet<SeriesId>,
}

impl Catalog {
    pub fn new(next_id: SeriesId) -> Self {
        Self {
            next_id: next_id.max(1),
            ..Default::default()
        }
    }

    pub fn get(&self, key: &SeriesKey) -> Option<SeriesId> {
        self.by_key.get(key).copied()
    }

    pub fn key(&self, id: SeriesId) -> Option<&Arc<SeriesKey>> {
        self.by_id.get(&id)
    }

    /// Registers a key with a fresh id; its key must go into the WAL.
    pub fn insert_new(&mut self, key: SeriesKey) -> SeriesId {
        let id = self.next_id;
        self.next_id += 1;
        self.insert(id, key);
        self.undurable.insert(id);
        id
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

    /// Registers a key under an id read back from disk.
    pub fn insert(&mut self, id: SeriesId, key: SeriesKey) {
        let key = Arc::new(key);
        self.by_key.insert(key.clone(), id);
        self.by_id.insert(id, key);
        self.next_id = self.next_id.max(id + 1);
    }

    pub fn remove(&mut self, id: SeriesId) {
        self.undurable.remove(&id);
        if let Some(k) = self.by_id.remove(&id) {
            self.by_key.remove(&k);
        }
    }

    pub fn next_id(&self) -> SeriesId {
        self.next_id
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Series whose keys match, ordered by key.
    pub fn matching(&self, m: &SeriesMatcher) -> Vec<(SeriesId, Arc<SeriesKey>)> {
        let mut out: Vec<(SeriesId, Arc<SeriesKey>)> = self
            .by_id
            .iter()
            .filter(|(_, k)| m.matches(k))
            .map(|(id, k)| (*id, k.clone()))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }
}
