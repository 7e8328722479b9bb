//! What the garbage collector does with one object, as kube-controller-manager's
//! `attemptToDeleteItem`, `processDeletingDependentsItem` and `orphanDependents` decide it.
//! Pure: the caller has found out what it needs (owner states, dependents) and carries the
//! answer out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::graph::{Graph, Key, Node};
use crate::apiserver::delete::Propagation;

/// What became of one owner an object names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// It exists (same uid) and keeps its dependents.
    Solid,
    /// It is gone, or its name now belongs to another object (another uid).
    Dangling,
    /// It is being deleted in the foreground: its dependents must go first.
    Waiting,
}

/// What to do with a dependent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: an owner still holds it (or it has none).
    Keep,
    /// Remove its references to these owner uids: another owner still holds it.
    DropOwners(Vec<String>),
    /// Delete it, with this propagation for its own dependents.
    Delete(Propagation),
}

/// The verdict for `node`, whose owners turned out as `owners`; `has_dependents` says whether
/// anything names `node` as its owner.
pub fn verdict(node: &Node, owners: &[(&OwnerReference, Owner)], has_dependents: bool) -> Verdict {
    if owners.is_empty() {
        return Verdict::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == Owner::Solid);
    let waiting = owners.iter().any(|(_, s)| *s == Owner::Waiting);
    if solid {
        let released: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != Owner::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if released.is_empty() {
            Verdict::Keep
        } else {
            Verdict::DropOwners(released)
        };
    }
    // An owner waits in the foreground and this object has dependents of its own: they must
    // go first too, so it is deleted in the foreground as well.
    if waiting && has_dependents {
        return Verdict::Delete(Propagation::Foreground);
    }
    Verdict::Delete(if node.orphan {
        Propagation::Orphan
    } else if node.foreground {
        Propagation::Foreground
    } else {
        Propagation::Background
    })
}

/// What a deleting owner needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerStep {
    /// Nothing (not deleting, or no finalizer of the collector's).
    Nothing,
    /// `orphan`: remove the owner from its dependents, then the finalizer.
    Orphan,
    /// `foregroundDeletion` and no blocking dependent left: remove the finalizer.
    Finish,
    /// `foregroundDeletion` and these blocking dependents still exist.
    Wait(Vec<Key>),
}

/// The step for the deleting owner `node` with uid `uid`.
pub fn owner_step(uid: &str, node: &Node, graph: &Graph) -> OwnerStep {
    if !node.deleting {
        return OwnerStep::Nothing;
    }
    if node.orphan {
        return OwnerStep::Orphan;
    }
    if !node.foreground {
        return OwnerStep::Nothing;
    }
    let blocking: Vec<Key> = graph
        .dependents(uid)
        .into_iter()
        .filter(|(_, d)| {
            d.owners
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
        })
        .map(|(_, d)| d.key.clone())
        .collect();
    if blocking.is_empty() {
        OwnerStep::Finish
    } else {
        OwnerStep::Wait(blocking)
    }
}

/// The API group of an ownerReference's `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn reference(uid: &str, block: bool) -> OwnerReference {
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": uid, "uid": uid, "blockOwnerDeletion": block}))
        .unwrap()
    }

    fn node(kind: usize, meta: serde_json::Value) -> Node {
        Node::of(kind, &serde_json::from_value::<ObjectMeta>(meta).unwrap())
    }

    #[test]
    fn a_dependent_goes_only_when_no_owner_holds_it() {
        let pod = node(0, json!({"name": "p", "uid": "p"}));
        let (a, b) = (reference("a", true), reference("b", true));
        assert_eq!(verdict(&pod, &[], false), Verdict::Keep);
        assert_eq!(verdict(&pod, &[(&a, Owner::Solid)], false), Verdict::Keep);
        assert_eq!(
            verdict(&pod, &[(&a, Owner::Solid), (&b, Owner::Dangling)], false),
            Verdict::DropOwners(vec!["b".into()])
        );
        assert_eq!(
            verdict(&pod, &[(&a, Owner::Solid), (&b, Owner::Waiting)], false),
            Verdict::DropOwners(vec!["b".into()])
        );
        assert_eq!(
            verdict(&pod, &[(&a, Owner::Dangling)], false),
            Verdict::Delete(Propagation::Background)
        );
        assert_eq!(
            verdict(&pod, &[(&a, Owner::Waiting)], true),
            Verdict::Delete(Propagation::Foreground),
            "a waiting owner's dependent with dependents of its own goes in the foreground"
        );
        let orphaning = node(
            0,
            json!({"name": "p", "uid": "p", "finalizers": ["orphan"]}),
        );
        assert_eq!(
            verdict(&orphaning, &[(&a, Owner::Dangling)], true),
            Verdict::Delete(Propagation::Orphan)
        );
    }

    #[test]
    fn a_foreground_owner_waits_only_for_blocking_dependents() {
        let mut g = Graph::default();
        let owner = node(
            1,
            json!({"name": "rs", "uid": "rs", "deletionTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["foregroundDeletion"]}),
        );
        g.apply("rs", owner.clone());
        assert_eq!(owner_step("rs", &owner, &g), OwnerStep::Finish);
        let loose = json!({"name": "loose", "uid": "loose",
            "ownerReferences": [reference("rs", false)]});
        g.apply("loose", node(0, loose));
        assert_eq!(owner_step("rs", &owner, &g), OwnerStep::Finish);
        let blocking = json!({"name": "p", "uid": "p", "ownerReferences": [reference("rs", true)]});
        g.apply("p", node(0, blocking));
        match owner_step("rs", &owner, &g) {
            OwnerStep::Wait(keys) => assert_eq!(keys.len(), 1),
            other => panic!("{other:?}"),
        }
        let orphaning = node(
            1,
            json!({"name": "rs", "uid": "rs", "deletionTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["orphan"]}),
        );
        assert_eq!(owner_step("rs", &orphaning, &g), OwnerStep::Orphan);
        let live = node(1, json!({"name": "rs", "uid": "rs"}));
        assert_eq!(owner_step("rs", &live, &g), OwnerStep::Nothing);
    }

    #[test]
    fn groups_of_api_versions() {
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("coordination.k8s.io/v1"), "coordination.k8s.io");
    }
}
