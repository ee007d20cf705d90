//! Caches of trimmed objects: plain in-memory indexes with synchronous `apply`, `delete` and
//! `reset`, fed by the watchers. Each keeps only the fields the checks read, so memory per
//! object stays small; checks borrow them read-only.

pub mod namespace;
pub mod webhook;

use std::collections::BTreeMap;

pub use namespace::NamespaceInfo;
pub use webhook::{Selector, WebhookConfigInfo, WebhookInfo};

/// A trimmed object that can live in an [`Index`].
pub trait Cached: Clone + Send + Sync + 'static {
    /// `namespace/name` for namespaced objects, `name` for cluster-scoped ones.
    fn key(&self) -> String;
}

/// A plain index of trimmed objects by key.
#[derive(Debug, Clone)]
pub struct Index<T> {
    objects: BTreeMap<String, T>,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index { objects: BTreeMap::new() }
    }
}

impl<T: Cached> Index<T> {
    pub fn apply(&mut self, obj: T) {
        self.objects.insert(obj.key(), obj);
    }

    pub fn delete(&mut self, key: &str) {
        self.objects.remove(key);
    }

    /// Replaces everything (after a (re-)list).
    pub fn reset(&mut self, objs: impl IntoIterator<Item = T>) {
        self.objects = objs.into_iter().map(|o| (o.key(), o)).collect();
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.objects.get(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    /// Builds an index from objects (tests, one-shot `check`).
    pub fn from_objects(objs: impl IntoIterator<Item = T>) -> Self {
        let mut i = Index::default();
        i.reset(objs);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_delete_reset() {
        let mut idx = Index::default();
        idx.apply(NamespaceInfo::test("a"));
        idx.apply(NamespaceInfo::test("b"));
        idx.apply(NamespaceInfo::test("a").labelled("x", "y"));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get("a").map(|n| n.labels.len()), Some(1));
        idx.delete("a");
        idx.delete("missing");
        assert_eq!(idx.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["b"]);
        idx.reset([NamespaceInfo::test("c")]);
        assert_eq!(idx.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["c"]);
    }
}
