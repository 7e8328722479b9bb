//! What a DaemonSet does next, as a pure function of its nodes and the pods on them
//! (kube-controller-manager's `manage`, `podsShouldBeOnNode` and `rollingUpdate` with
//! `maxSurge: 0`), and the status counts (`updateDaemonSetStatus`).

use std::collections::BTreeMap;

use super::nodes::Fit;

/// One daemon pod, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Its name.
    pub name: String,
    /// Being deleted.
    pub terminating: bool,
    /// Failed or Succeeded.
    pub finished: bool,
    /// At the update revision.
    pub updated: bool,
    /// Ready.
    pub ready: bool,
    /// Ready for `minReadySeconds`.
    pub available: bool,
}

/// One node name's situation: `None` when there is no such Node (any more).
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// The node's fit, if the node exists.
    pub fit: Option<Fit>,
    /// The DaemonSet's pods for it, oldest first.
    pub pods: Vec<PodView>,
}

/// What to do this pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes that get a pod.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
}

/// The plan for `slots` (by node name); `max_unavailable` is `None` for `OnDelete`.
pub fn plan(slots: &BTreeMap<String, Slot>, max_unavailable: Option<i32>) -> Plan {
    let mut out = Plan::default();
    for (node, slot) in slots {
        let live: Vec<&PodView> = slot.pods.iter().filter(|p| !p.terminating).collect();
        match slot.fit {
            Some(fit) if fit.should_run || fit.should_continue => {
                // A failed daemon pod is replaced; duplicates go, the oldest stays.
                let mut running = Vec::new();
                for pod in &live {
                    if pod.finished {
                        out.delete.push(pod.name.clone());
                    } else {
                        running.push(*pod);
                    }
                }
                if fit.should_run && slot.pods.is_empty() {
                    out.create.push(node.clone());
                }
                for extra in running.iter().skip(1) {
                    out.delete.push(extra.name.clone());
                }
            }
            // Not for this node (or no such node): its pods go.
            _ => out.delete.extend(live.iter().map(|p| p.name.clone())),
        }
    }
    let Some(max_unavailable) = max_unavailable else {
        return out;
    };

    // Rolling update: outdated pods that are unavailable anyway go at once; available ones
    // only while fewer than maxUnavailable nodes lack an available pod.
    let mut unavailable = 0;
    let mut outdated_available = Vec::new();
    for slot in slots.values() {
        if !slot.fit.is_some_and(|f| f.should_run) {
            continue;
        }
        let current = slot.pods.iter().find(|p| !p.terminating && !p.finished);
        match current {
            Some(pod) if pod.available => {
                if !pod.updated {
                    outdated_available.push(pod.name.clone());
                }
            }
            Some(pod) => {
                unavailable += 1;
                if !pod.updated && !out.delete.contains(&pod.name) {
                    out.delete.push(pod.name.clone());
                }
            }
            None => unavailable += 1,
        }
    }
    let room = usize::try_from((max_unavailable.max(1) - unavailable).max(0)).unwrap_or(0);
    out.delete.extend(
        outdated_available
            .into_iter()
            .filter(|n| !out.delete.contains(n))
            .take(room)
            .collect::<Vec<_>>(),
    );
    out
}

/// The status counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `desiredNumberScheduled`.
    pub desired: i32,
    /// `currentNumberScheduled`.
    pub current: i32,
    /// `numberMisscheduled`.
    pub misscheduled: i32,
    /// `numberReady`.
    pub ready: i32,
    /// `numberAvailable`.
    pub available: i32,
    /// `updatedNumberScheduled`.
    pub updated: i32,
}

/// Counts nodes by what their pods do.
pub fn count(slots: &BTreeMap<String, Slot>) -> Counts {
    let mut c = Counts::default();
    for slot in slots.values() {
        let Some(fit) = slot.fit else { continue };
        let has_pod = !slot.pods.is_empty();
        if !fit.should_run {
            if has_pod {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let Some(pod) = slot
            .pods
            .iter()
            .find(|p| !p.terminating)
            .or(slot.pods.first())
        else {
            continue;
        };
        c.current += 1;
        c.ready += i32::from(pod.ready);
        c.available += i32::from(pod.available);
        c.updated += i32::from(pod.updated);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: Option<Fit> = Some(Fit {
        should_run: true,
        should_continue: true,
    });

    fn pod(name: &str, updated: bool, available: bool) -> PodView {
        PodView {
            name: name.into(),
            terminating: false,
            finished: false,
            updated,
            ready: available,
            available,
        }
    }

    fn slots(list: Vec<(&str, Option<Fit>, Vec<PodView>)>) -> BTreeMap<String, Slot> {
        list.into_iter()
            .map(|(n, fit, pods)| (n.to_string(), Slot { fit, pods }))
            .collect()
    }

    #[test]
    fn every_eligible_node_gets_one_pod_and_others_lose_theirs() {
        let s = slots(vec![
            ("a", RUN, vec![pod("p-a", true, true)]),
            ("b", RUN, vec![]),
            (
                "c",
                Some(Fit {
                    should_run: false,
                    should_continue: false,
                }),
                vec![pod("p-c", true, true)],
            ),
            ("gone", None, vec![pod("p-gone", true, false)]),
            (
                "d",
                RUN,
                vec![pod("old", true, true), pod("dup", true, true)],
            ),
        ]);
        let p = plan(&s, Some(1));
        assert_eq!(p.create, ["b"]);
        assert_eq!(p.delete, ["p-c", "dup", "p-gone"]);
        let c = count(&s);
        assert_eq!((c.desired, c.current, c.misscheduled), (3, 2, 1));
    }

    #[test]
    fn a_failed_pod_is_replaced_after_it_is_gone() {
        let mut failed = pod("f", true, false);
        failed.finished = true;
        let p = plan(&slots(vec![("a", RUN, vec![failed.clone()])]), None);
        assert_eq!(
            (p.create.len(), p.delete.clone()),
            (0, vec!["f".to_string()])
        );
        failed.terminating = true;
        assert!(
            plan(&slots(vec![("a", RUN, vec![failed])]), None)
                .delete
                .is_empty()
        );
        assert_eq!(plan(&slots(vec![("a", RUN, vec![])]), None).create, ["a"]);
    }

    #[test]
    fn rolling_update_replaces_max_unavailable_nodes_at_a_time() {
        let old = || {
            slots(vec![
                ("a", RUN, vec![pod("a1", false, true)]),
                ("b", RUN, vec![pod("b1", false, true)]),
                ("c", RUN, vec![pod("c1", false, true)]),
            ])
        };
        assert_eq!(plan(&old(), Some(1)).delete, ["a1"]);
        assert_eq!(plan(&old(), Some(2)).delete, ["a1", "b1"]);
        assert!(plan(&old(), None).delete.is_empty());
        let mut rolling = old();
        rolling.get_mut("a").unwrap().pods = vec![pod("a2", true, false)];
        assert!(plan(&rolling, Some(1)).delete.is_empty());
        rolling.get_mut("a").unwrap().pods = vec![pod("a2", true, true)];
        assert_eq!(plan(&rolling, Some(1)).delete, ["b1"]);
        // An outdated pod that is not available anyway is replaced at once.
        rolling.get_mut("c").unwrap().pods = vec![pod("c1", false, false)];
        assert_eq!(plan(&rolling, Some(1)).delete, ["c1"]);
        let c = count(&rolling);
        assert_eq!((c.updated, c.available, c.ready), (1, 2, 2));
    }
}
