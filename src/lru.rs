//! A map bounded by bytes: the least recently used entries go first once the bytes held pass
//! the budget. The origin's caches and the front door's share it.

use std::collections::{BTreeMap, HashMap};

/// Values by key, the least recently used evicted first once over a byte budget.
pub(crate) struct Lru<V> {
    entries: HashMap<String, (V, u64, usize)>,
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
    evictions: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            evictions: 0,
        }
    }
}

impl<V: Clone> Lru<V> {
    pub fn get(&mut self, key: &str) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (value, old, _) = self.entries.get_mut(key)?;
        self.order.remove(old);
        *old = tick;
        self.order.insert(tick, key.to_string());
        Some(value.clone())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn remove(&mut self, key: &str) {
        if let Some((_, tick, bytes)) = self.entries.remove(key) {
            self.order.remove(&tick);
            self.bytes -= bytes;
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held, as their `put`s counted them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries dropped to keep within the budget so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Keeps `value` (of `bytes`) unless it alone is larger than `max_item`.
    pub fn put(&mut self, key: String, value: V, bytes: usize, budget: usize, max_item: usize) {
        if bytes > max_item {
            return;
        }
        self.tick += 1;
        self.bytes += bytes;
        if let Some((_, t, old)) = self.entries.insert(key.clone(), (value, self.tick, bytes)) {
            self.bytes -= old;
            self.order.remove(&t);
        }
        self.order.insert(self.tick, key);
        while self.bytes > budget {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, _, b)) = self.entries.remove(&k) {
                self.bytes -= b;
                self.evictions += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_bounded_by_bytes() {
        let mut c: Lru<u32> = Lru::default();
        for i in 0..100 {
            c.put(format!("p{i}"), i, 1 << 20, 16 << 20, 16 << 20);
        }
        assert!(c.bytes <= 16 << 20);
        assert!(c.entries.len() <= 16);
        assert!(c.get("p99").is_some() && c.get("p0").is_none());
    }
}
