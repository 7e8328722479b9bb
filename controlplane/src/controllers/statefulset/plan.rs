//! What a StatefulSet does next, as a pure function of its pods by ordinal (the decisions of
//! kube-controller-manager's `updateStatefulSet`): create the missing ordinals, delete
//! finished pods so they are made again, delete condemned ordinals (at or above `replicas`)
//! from the highest, and roll pods that are not at the update revision from the highest
//! ordinal down to `partition`, `maxUnavailable` at a time.
//!
//! Under `OrderedReady` every step waits for all lower ordinals to be Running and Ready (and
//! available): one create or delete per pass, nothing while a pod is terminating.
//! `Parallel` does everything at once.

use std::collections::BTreeMap;

/// How a pod at one ordinal looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Being deleted.
    Terminating,
    /// Succeeded or Failed: deleted and made again.
    Finished,
    /// Not Running and Ready (or not available for `minReadySeconds` yet).
    Unhealthy,
    /// Running, Ready and available.
    Healthy,
}

/// One existing pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Its health.
    pub health: Health,
    /// Whether it is at the update revision.
    pub updated: bool,
}

/// What the spec asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// `RollingUpdate`'s `(partition, maxUnavailable)`; `None` for `OnDelete`.
    pub rolling: Option<(i32, i32)>,
}

/// One action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create the pod at this ordinal, from the current revision (below the partition of a
    /// rolling update) or the update revision.
    Create {
        /// The ordinal.
        ordinal: i32,
        /// Made from the current revision rather than the update revision.
        current: bool,
    },
    /// Delete the pod at this ordinal.
    Delete(i32),
}

/// The steps for this pass, in order.
pub fn plan(spec: Spec, pods: &BTreeMap<i32, Observed>) -> Vec<Step> {
    let ordered = !spec.parallel;
    let mut steps = Vec::new();
    let partition = spec.rolling.map(|(p, _)| p);
    for ordinal in 0..spec.replicas.max(0) {
        match pods.get(&ordinal).map(|p| p.health) {
            None => {
                let current = partition.is_some_and(|p| ordinal < p);
                steps.push(Step::Create { ordinal, current });
            }
            Some(Health::Finished) => steps.push(Step::Delete(ordinal)),
            Some(Health::Terminating | Health::Unhealthy) => {}
            Some(Health::Healthy) => continue,
        }
        if ordered {
            return steps;
        }
    }

    // Condemned ordinals, highest first; under OrderedReady one only once every lower pod is
    // healthy (the lowest unhealthy condemned pod may go: it blocks nothing below it).
    let condemned: Vec<(i32, Observed)> = pods
        .range(spec.replicas.max(0)..)
        .rev()
        .map(|(o, p)| (*o, *p))
        .collect();
    for (i, (ordinal, pod)) in condemned.iter().enumerate() {
        if pod.health == Health::Terminating {
            if ordered {
                return steps;
            }
            continue;
        }
        let lower_unhealthy = condemned[i + 1..]
            .iter()
            .any(|(_, p)| p.health != Health::Healthy);
        if ordered && pod.health != Health::Healthy && lower_unhealthy {
            return steps;
        }
        steps.push(Step::Delete(*ordinal));
        if ordered {
            return steps;
        }
    }
    if ordered && !steps.is_empty() {
        return steps;
    }

    let Some((partition, max_unavailable)) = spec.rolling else {
        return steps;
    };
    let low = partition.clamp(0, spec.replicas.max(0));
    let healthy = |o: i32| pods.get(&o).is_some_and(|p| p.health == Health::Healthy);
    let unavailable = (low..spec.replicas).filter(|o| !healthy(*o)).count();
    let mut budget = i64::from(max_unavailable.max(1)) - unavailable as i64;
    for ordinal in (low..spec.replicas).rev() {
        let Some(pod) = pods.get(&ordinal) else {
            continue;
        };
        if pod.updated || matches!(pod.health, Health::Terminating | Health::Finished) {
            continue;
        }
        // An outdated pod that is unavailable anyway costs nothing to replace.
        if pod.health == Health::Healthy {
            if budget <= 0 {
                break;
            }
            budget -= 1;
        }
        steps.push(Step::Delete(ordinal));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERED: Spec = Spec {
        replicas: 3,
        parallel: false,
        rolling: Some((0, 1)),
    };

    fn pods(list: &[(i32, Health, bool)]) -> BTreeMap<i32, Observed> {
        list.iter()
            .map(|(o, health, updated)| {
                (
                    *o,
                    Observed {
                        health: *health,
                        updated: *updated,
                    },
                )
            })
            .collect()
    }

    use Health::{Finished, Healthy, Terminating, Unhealthy};

    fn create(ordinal: i32) -> Step {
        Step::Create {
            ordinal,
            current: false,
        }
    }

    #[test]
    fn ordered_ready_creates_the_next_ordinal_only_after_the_lower_ones_are_ready() {
        assert_eq!(plan(ORDERED, &pods(&[])), [create(0)]);
        assert!(plan(ORDERED, &pods(&[(0, Unhealthy, true)])).is_empty());
        assert_eq!(plan(ORDERED, &pods(&[(0, Healthy, true)])), [create(1)]);
        assert_eq!(
            plan(ORDERED, &pods(&[(0, Healthy, true), (1, Healthy, true)])),
            [create(2)]
        );
    }

    #[test]
    fn a_missing_or_failed_pod_is_made_again_under_its_name() {
        let all = |h1| pods(&[(0, Healthy, true), (1, h1, true), (2, Healthy, true)]);
        assert_eq!(
            plan(ORDERED, &pods(&[(0, Healthy, true), (2, Healthy, true)])),
            [create(1)]
        );
        assert_eq!(plan(ORDERED, &all(Finished)), [Step::Delete(1)]);
        assert!(plan(ORDERED, &all(Terminating)).is_empty());
    }

    #[test]
    fn parallel_creates_everything_at_once() {
        let spec = Spec {
            parallel: true,
            ..ORDERED
        };
        assert_eq!(plan(spec, &pods(&[])), [create(0), create(1), create(2)]);
        let steps = plan(spec, &pods(&[(0, Unhealthy, true)]));
        assert_eq!(steps, [create(1), create(2)]);
    }

    #[test]
    fn scale_down_deletes_the_highest_ordinal_first_one_at_a_time() {
        let spec = Spec {
            replicas: 1,
            ..ORDERED
        };
        let three = pods(&[(0, Healthy, true), (1, Healthy, true), (2, Healthy, true)]);
        assert_eq!(plan(spec, &three), [Step::Delete(2)]);
        let terminating = pods(&[
            (0, Healthy, true),
            (1, Healthy, true),
            (2, Terminating, true),
        ]);
        assert!(plan(spec, &terminating).is_empty());
        let two = pods(&[(0, Healthy, true), (1, Healthy, true)]);
        assert_eq!(plan(spec, &two), [Step::Delete(1)]);
        // Not while a lower pod is unhealthy.
        let low_unhealthy = pods(&[(0, Unhealthy, true), (1, Healthy, true)]);
        assert!(plan(spec, &low_unhealthy).is_empty());
        let parallel = Spec {
            parallel: true,
            ..spec
        };
        assert_eq!(plan(parallel, &three), [Step::Delete(2), Step::Delete(1)]);
    }

    #[test]
    fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
        let old = pods(&[
            (0, Healthy, false),
            (1, Healthy, false),
            (2, Healthy, false),
        ]);
        assert_eq!(plan(ORDERED, &old), [Step::Delete(2)]);
        let rolled_two = pods(&[(0, Healthy, false), (1, Healthy, false), (2, Healthy, true)]);
        assert_eq!(plan(ORDERED, &rolled_two), [Step::Delete(1)]);
        // Waits for the replaced pod to be Ready again.
        let back = pods(&[
            (0, Healthy, false),
            (1, Healthy, false),
            (2, Unhealthy, true),
        ]);
        assert!(plan(ORDERED, &back).is_empty());
        let partitioned = Spec {
            rolling: Some((2, 1)),
            ..ORDERED
        };
        assert!(plan(partitioned, &rolled_two).is_empty());
        // Below the partition a missing pod comes back at the current revision.
        let missing = pods(&[(1, Healthy, false), (2, Healthy, true)]);
        assert_eq!(
            plan(partitioned, &missing),
            [Step::Create {
                ordinal: 0,
                current: true
            }]
        );
    }

    #[test]
    fn max_unavailable_bounds_a_parallel_rolling_update_and_on_delete_never_rolls() {
        let spec = Spec {
            parallel: true,
            rolling: Some((0, 2)),
            ..ORDERED
        };
        let old = pods(&[
            (0, Healthy, false),
            (1, Healthy, false),
            (2, Healthy, false),
        ]);
        assert_eq!(plan(spec, &old), [Step::Delete(2), Step::Delete(1)]);
        let one_down = pods(&[
            (0, Healthy, false),
            (1, Healthy, false),
            (2, Unhealthy, true),
        ]);
        assert_eq!(plan(spec, &one_down), [Step::Delete(1)]);
        let on_delete = Spec {
            rolling: None,
            ..ORDERED
        };
        assert!(plan(on_delete, &old).is_empty());
    }
}
