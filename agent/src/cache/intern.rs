//! Interned strings and label sets for the pod cache: the pods of one workload share their
//! namespace, owner name, proxy image and (per ReplicaSet) their whole label set, so a cached
//! pod holds pointers instead of copies. Entries nobody else holds any more are swept
//! periodically, so rollouts (new `pod-template-hash` label sets) do not grow it for ever.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A pod's labels, sorted by key, shared by every pod with the same set.
pub type Labels = Arc<[(Arc<str>, Arc<str>)]>;

/// Looks a label up in a sorted label set.
pub fn label<'a>(labels: &'a Labels, key: &str) -> Option<&'a str> {
    labels.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok().map(|i| labels[i].1.as_ref())
}

/// The interner.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
    label_sets: HashSet<Labels>,
    owners: HashSet<Arc<(Arc<str>, Arc<str>)>>,
    since_sweep: usize,
}

/// Sweep after this many interning calls.
const SWEEP_EVERY: usize = 50_000;

impl Interner {
    pub fn str(&mut self, s: &str) -> Arc<str> {
        self.tick();
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    /// An owner's (kind, name), one allocation shared by its pods.
    pub fn owner(&mut self, kind: &str, name: &str) -> Arc<(Arc<str>, Arc<str>)> {
        let pair = (self.str(kind), self.str(name));
        if let Some(existing) = self.owners.get(&pair) {
            return existing.clone();
        }
        let a = Arc::new(pair);
        self.owners.insert(a.clone());
        a
    }

    pub fn labels(&mut self, map: BTreeMap<String, String>) -> Labels {
        let v: Vec<(Arc<str>, Arc<str>)> = map.iter().map(|(k, v)| (self.str(k), self.str(v))).collect();
        let set: Labels = Arc::from(v);
        if let Some(existing) = self.label_sets.get(&set) {
            return existing.clone();
        }
        self.label_sets.insert(set.clone());
        set
    }

    fn tick(&mut self) {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.sweep();
        }
    }

    /// Drops every entry held by nobody but the interner.
    pub fn sweep(&mut self) {
        self.since_sweep = 0;
        self.label_sets.retain(|l| Arc::strong_count(l) > 1);
        self.owners.retain(|o| Arc::strong_count(o) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    /// (strings, label sets) held.
    pub fn len(&self) -> (usize, usize) {
        (self.strings.len(), self.label_sets.len())
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty() && self.label_sets.is_empty() && self.owners.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_values_share_one_allocation_and_unused_ones_are_swept() {
        let mut i = Interner::default();
        let a = i.str("istio-system");
        let b = i.str("istio-system");
        assert!(Arc::ptr_eq(&a, &b));
        let m: BTreeMap<String, String> =
            [("app".to_string(), "web".to_string()), ("pod-template-hash".into(), "abc".into())].into();
        let l1 = i.labels(m.clone());
        let l2 = i.labels(m);
        assert!(Arc::ptr_eq(&l1, &l2), "pods of one ReplicaSet share their label set");
        assert_eq!(label(&l1, "app"), Some("web"));
        assert_eq!(label(&l1, "missing"), None);
        let o1 = i.owner("ReplicaSet", "web-abc");
        assert!(Arc::ptr_eq(&o1, &i.owner("ReplicaSet", "web-abc")));
        drop((a, b, l1, l2, o1));
        i.sweep();
        assert!(i.is_empty(), "{:?}", i.len());
    }
}
