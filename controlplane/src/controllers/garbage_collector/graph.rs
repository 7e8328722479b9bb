//! The garbage collector's picture of ownership: every watched object by uid with its
//! ownerReferences, and for every owner uid (present or not) the uids that point at it, as
//! kube-controller-manager's `GraphBuilder` keeps it.
//!
//! The graph only answers questions and says which objects a change concerns; deciding and
//! acting is `garbage_collector.rs`'s. It is fed from the reflectors' watch events, so it can
//! lag the API: an owner it does not know is checked with a live read before anything is
//! deleted.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::apiserver::delete::{FOREGROUND, ORPHAN};

/// A watched kind, by its index in the collector's table of kinds.
pub type KindId = usize;

/// Where an object is: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Its kind.
    pub kind: KindId,
    /// Its namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// One object as the graph knows it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Where it is.
    pub key: Key,
    /// Its ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// It has a `deletionTimestamp`.
    pub deleting: bool,
    /// It carries the `foregroundDeletion` finalizer.
    pub foreground: bool,
    /// It carries the `orphan` finalizer.
    pub orphan: bool,
}

impl Node {
    /// The node of an object of `kind` with metadata `meta`.
    pub fn of(kind: KindId, meta: &ObjectMeta) -> Self {
        let finalizers = meta.finalizers.as_deref().unwrap_or_default();
        Node {
            key: Key {
                kind,
                namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
                name: meta.name.clone().unwrap_or_default(),
            },
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            foreground: finalizers.iter().any(|f| f == FOREGROUND),
            orphan: finalizers.iter().any(|f| f == ORPHAN),
        }
    }

    /// Being deleted in the foreground: it waits for its blocking dependents.
    pub fn waits_for_dependents(&self) -> bool {
        self.deleting && self.foreground
    }
}

/// The ownership graph. See the module docs.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    relisting: HashMap<KindId, HashSet<String>>,
    synced: HashSet<KindId>,
}

impl Graph {
    /// The object with `uid`, if the graph has seen it.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Every known object whose ownerReferences name `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<(&str, &Node)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).map(|n| (d.as_str(), n)))
            .collect()
    }

    /// Whether every kind in `kinds` has been listed once.
    pub fn synced(&self, kinds: impl IntoIterator<Item = KindId>) -> bool {
        kinds.into_iter().all(|k| self.synced.contains(&k))
    }

    /// Records the object `uid` as `node`; returns the objects the change concerns (beyond
    /// itself): the dependents of an owner that starts a foreground or orphaning deletion,
    /// and the owners waiting for it.
    pub fn apply(&mut self, uid: &str, node: Node) -> Vec<Key> {
        if let Some(listing) = self.relisting.get_mut(&node.key.kind) {
            listing.insert(uid.to_string());
        }
        let old = self.nodes.insert(uid.to_string(), node.clone());
        let old_owners: Vec<String> = old
            .iter()
            .flat_map(|o| o.owners.iter().map(|r| r.uid.clone()))
            .collect();
        for owner in &old_owners {
            self.unlink(owner, uid);
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        let mut touched = Vec::new();
        if node.deleting && (node.foreground || node.orphan) {
            touched.extend(self.dependents(uid).into_iter().map(|(_, d)| d.key.clone()));
        }
        let owners = old_owners
            .iter()
            .chain(node.owners.iter().map(|r| &r.uid))
            .collect::<HashSet<_>>();
        touched.extend(self.waiting(owners));
        touched
    }

    /// Forgets the object `uid`; returns the objects that concern: its dependents (their
    /// owner may be gone now) and the owners that were waiting for it.
    pub fn remove(&mut self, uid: &str) -> Vec<Key> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        for owner in &node.owners {
            self.unlink(&owner.uid, uid);
        }
        let mut touched: Vec<Key> = self
            .dependents(uid)
            .into_iter()
            .map(|(_, d)| d.key.clone())
            .collect();
        touched.extend(self.waiting(node.owners.iter().map(|r| &r.uid)));
        touched
    }

    /// A relist of `kind` starts: objects it does not show again were deleted meanwhile.
    pub fn relist_started(&mut self, kind: KindId) {
        self.relisting.insert(kind, HashSet::new());
    }

    /// The relist of `kind` is complete: forgets what it did not show and returns what that
    /// concerns, as [`Graph::remove`] does.
    pub fn relist_done(&mut self, kind: KindId) -> Vec<Key> {
        self.synced.insert(kind);
        let Some(seen) = self.relisting.remove(&kind) else {
            return Vec::new();
        };
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, n)| n.key.kind == kind && !seen.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().flat_map(|uid| self.remove(uid)).collect()
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    fn waiting<'a>(&self, owners: impl IntoIterator<Item = &'a String>) -> Vec<Key> {
        owners
            .into_iter()
            .filter_map(|o| self.nodes.get(o))
            .filter(|o| o.waits_for_dependents())
            .map(|o| o.key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    fn owned(name: &str, owner: &str) -> ObjectMeta {
        meta(json!({"name": name, "namespace": "default", "uid": name,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                "uid": owner, "blockOwnerDeletion": true}]}))
    }

    fn add(g: &mut Graph, kind: KindId, m: &ObjectMeta) -> Vec<Key> {
        g.apply(m.uid.as_deref().unwrap(), Node::of(kind, m))
    }

    fn names(keys: &[Key]) -> Vec<&str> {
        let mut n: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn an_owner_that_goes_concerns_its_dependents_even_if_never_seen() {
        let mut g = Graph::default();
        add(&mut g, 0, &owned("p1", "rs"));
        add(&mut g, 0, &owned("p2", "rs"));
        assert_eq!(g.dependents("rs").len(), 2, "a virtual owner still indexes");
        add(
            &mut g,
            1,
            &meta(json!({"name": "rs", "namespace": "default", "uid": "rs"})),
        );
        assert_eq!(names(&g.remove("rs")), ["p1", "p2"]);
        assert_eq!(names(&g.remove("p1")), Vec::<&str>::new());
        assert_eq!(g.dependents("rs").len(), 1);
    }

    #[test]
    fn foreground_deletion_wakes_dependents_and_their_changes_wake_the_owner() {
        let mut g = Graph::default();
        add(&mut g, 0, &owned("p1", "rs"));
        let deleting = meta(json!({"name": "rs", "namespace": "default", "uid": "rs",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}));
        assert_eq!(names(&add(&mut g, 1, &deleting)), ["p1"]);
        assert!(g.get("rs").unwrap().waits_for_dependents());
        // The dependent dropping its reference, or going, wakes the waiting owner.
        let released = meta(json!({"name": "p1", "namespace": "default", "uid": "p1"}));
        assert_eq!(names(&add(&mut g, 0, &released)), ["rs"]);
        assert!(g.dependents("rs").is_empty());
        add(&mut g, 0, &owned("p1", "rs"));
        assert_eq!(names(&g.remove("p1")), ["rs"]);
    }

    #[test]
    fn a_relist_forgets_what_it_no_longer_shows() {
        let mut g = Graph::default();
        add(&mut g, 0, &owned("p1", "rs"));
        add(
            &mut g,
            1,
            &meta(json!({"name": "rs", "namespace": "default", "uid": "rs"})),
        );
        assert!(!g.synced([0, 1]));
        g.relist_started(1);
        assert_eq!(names(&g.relist_done(1)), ["p1"], "rs was deleted meanwhile");
        assert!(g.get("rs").is_none());
        g.relist_started(0);
        add(&mut g, 0, &owned("p1", "rs"));
        assert!(g.relist_done(0).is_empty());
        assert!(g.synced([0, 1]));
    }
}
