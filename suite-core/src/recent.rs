//! The last few results of a computation, by key: what a list is computed from (a binary's
//! string extraction, a capture's message order), kept so that each page of the list is a
//! slice of it instead of a new pass over the input.

use std::sync::{Arc, Mutex};

/// At most `capacity` values by key; past that the oldest goes.
pub struct Recent<K, V> {
    kept: Mutex<Vec<(K, Arc<V>)>>,
    capacity: usize,
}

impl<K: PartialEq, V> Recent<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
        }
    }

    /// The value kept for `key`, or the one `make` computes, then kept.
    pub fn get_or_make(&self, key: K, make: impl FnOnce() -> V) -> Arc<V> {
        let lock = || self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = lock().iter().find(|(k, _)| *k == key) {
            return v.clone();
        }
        // Computed without the lock: other keys stay served meanwhile.
        let v = Arc::new(make());
        let mut kept = lock();
        if kept.len() >= self.capacity {
            kept.remove(0);
        }
        kept.push((key, v.clone()));
        v
    }

    /// Whether a value is kept for `key` (nothing is computed).
    pub fn contains(&self, key: &K) -> bool {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().any(|(k, _)| k == key)
    }

    /// Every value kept now (for memory accounting).
    pub fn values(&self) -> Vec<Arc<V>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().map(|(_, v)| v.clone()).collect()
    }
}

impl<K, V> std::fmt::Debug for Recent<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.kept.lock().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("Recent")
            .field("kept", &n)
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_made_once_and_the_oldest_goes() {
        let r = Recent::new(2);
        let mut made = 0;
        for k in [1, 2, 1, 3, 1] {
            r.get_or_make(k, || {
                made += 1;
                k * 10
            });
        }
        // 1, 2 made; 1 kept; 3 made (1 goes); 1 made again.
        assert_eq!(made, 4);
        let mut v: Vec<i32> = r.values().iter().map(|v| **v).collect();
        v.sort_unstable();
        assert_eq!(v, vec![10, 30]);
    }
}
