//! The arithmetic of a Deployment's rollout, pure so it can be tested on its own: how many
//! pods `maxSurge` and `maxUnavailable` allow, how far the new ReplicaSet may grow and how far
//! the old ones may shrink in one step (kube-controller-manager's `rolling.go`), and the
//! `pod-template-hash`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A ReplicaSet as the rollout sees it: its `spec.replicas` and `status.availableReplicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// `maxSurge` or `maxUnavailable` against `replicas`: an absolute number, or a percentage
/// rounded up (surge) or down (unavailable), as Kubernetes resolves them.
pub fn resolve(value: Option<&IntOrString>, replicas: i32, default: &str, round_up: bool) -> i32 {
    let percent = |text: &str| -> Option<i32> {
        let p: f64 = text.strip_suffix('%')?.trim().parse().ok()?;
        let exact = p * f64::from(replicas) / 100.0;
        Some(if round_up {
            exact.ceil()
        } else {
            exact.floor()
        } as i32)
    };
    match value {
        Some(IntOrString::Int(n)) => (*n).max(0),
        Some(IntOrString::String(s)) => percent(s).or_else(|| s.parse().ok()).unwrap_or(0).max(0),
        None => percent(default).unwrap_or(0),
    }
}

/// `(maxSurge, maxUnavailable)` for `replicas`; both zero would deadlock, so unavailable
/// becomes 1 then, as in Kubernetes.
pub fn surge_and_unavailable(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let surge = resolve(surge, replicas, "25%", true);
    let unavailable = resolve(unavailable, replicas, "25%", false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The new ReplicaSet's replicas after one step towards `desired`.
pub fn new_replicas(desired: i32, max_surge: i32, new: Counts, all: &[Counts]) -> i32 {
    if new.replicas >= desired {
        return desired;
    }
    let total: i32 = all.iter().map(|c| c.replicas).sum();
    let room = desired + max_surge - total;
    if room <= 0 {
        return new.replicas;
    }
    new.replicas + room.min(desired - new.replicas)
}

/// The old ReplicaSets' replicas after one step (same order as `old`): unhealthy replicas go
/// first, then available ones as far as `desired - maxUnavailable` stays available.
pub fn old_replicas(desired: i32, max_unavailable: i32, new: Counts, old: &[Counts]) -> Vec<i32> {
    let mut replicas: Vec<i32> = old.iter().map(|c| c.replicas).collect();
    let old_total: i32 = replicas.iter().sum();
    if old_total == 0 {
        return replicas;
    }
    let all_total = old_total + new.replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let mut budget = all_total - min_available - new_unavailable;
    if budget <= 0 {
        return replicas;
    }
    // Unhealthy old replicas cost no availability.
    for (r, c) in replicas.iter_mut().zip(old) {
        let unhealthy = (*r - c.available).max(0).min(budget);
        *r -= unhealthy;
        budget -= unhealthy;
        if budget == 0 {
            break;
        }
    }
    // Then available ones, as long as enough stay available.
    let available: i32 = old.iter().map(|c| c.available).sum::<i32>() + new.available;
    let mut allowed = available - min_available;
    for r in replicas.iter_mut() {
        if allowed <= 0 {
            break;
        }
        let down = (*r).min(allowed);
        *r -= down;
        allowed -= down;
    }
    replicas
}

/// The replicas of each ReplicaSet of a paused Deployment whose `replicas` changed, as
/// kube's proportional scaling does (`sync` of a paused Deployment still scales): with one
/// active set (or none; then `fallback`, the newest) it gets all of `desired`; with several,
/// `desired + surge` is shared in proportion to their sizes, rounding down, and what is left
/// goes to the largest (ties: the first, which the caller orders newest first).
pub fn paused_replicas(desired: i32, surge: i32, sets: &[i32], fallback: usize) -> Vec<i32> {
    let active: Vec<usize> = (0..sets.len()).filter(|&i| sets[i] > 0).collect();
    let mut out = sets.to_vec();
    match active.as_slice() {
        [] => {
            if let Some(slot) = out.get_mut(fallback) {
                *slot = desired;
            }
        }
        [only] => out[*only] = desired,
        _ => {
            let total: i64 = sets.iter().map(|&r| i64::from(r.max(0))).sum();
            let allowed = i64::from((desired + surge).max(0));
            let mut given = 0i64;
            for &i in &active {
                let share = i64::from(sets[i]) * allowed / total;
                out[i] = share as i32;
                given += share;
            }
            let largest = active
                .iter()
                .copied()
                .max_by_key(|&i| (sets[i], std::cmp::Reverse(i)))
                .unwrap_or(active[0]);
            out[largest] += (allowed - given) as i32;
        }
    }
    out
}

/// The `pod-template-hash` of a template (its JSON) and the Deployment's collision count:
/// FNV-1a 32 of both, its decimal digits written in Kubernetes' safe alphabet
/// (`rand.SafeEncodeString`: no vowels, no look-alike characters).
pub fn template_hash(template_json: &[u8], collision_count: i32) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    eat(template_json);
    if collision_count > 0 {
        eat(&collision_count.to_le_bytes());
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(replicas: i32, available: i32) -> Counts {
        Counts {
            replicas,
            available,
        }
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(surge_and_unavailable(None, None, 4), (1, 1));
        assert_eq!(surge_and_unavailable(None, None, 10), (3, 2));
        assert_eq!(
            surge_and_unavailable(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(
            surge_and_unavailable(Some(&pct("50%")), Some(&pct("0%")), 3),
            (2, 0)
        );
    }

    #[test]
    fn a_rolling_update_of_four_never_drops_below_three_available() {
        // replicas 4, maxSurge 1, maxUnavailable 1: simulate steps where each new pod becomes
        // available before the next step.
        let (desired, surge, unavailable) = (4, 1, 1);
        let mut new = c(0, 0);
        let mut old = vec![c(4, 4)];
        for _ in 0..20 {
            let all: Vec<Counts> = old.iter().copied().chain([new]).collect();
            new.replicas = new_replicas(desired, surge, new, &all);
            let scaled = old_replicas(desired, unavailable, new, &old);
            for (o, r) in old.iter_mut().zip(scaled) {
                o.replicas = r;
                o.available = o.available.min(r);
            }
            let available = old.iter().map(|o| o.available).sum::<i32>() + new.available;
            assert!(available >= desired - unavailable, "available {available}");
            let total = old.iter().map(|o| o.replicas).sum::<i32>() + new.replicas;
            assert!(total <= desired + surge, "total {total}");
            new.available = new.replicas; // the new pods turn ready
        }
        assert_eq!((new, old[0].replicas), (c(4, 4), 0));
    }

    #[test]
    fn unavailable_old_replicas_are_removed_first() {
        // An old set with 2 broken pods of 3 and room for 2 unavailable: the broken ones go,
        // the available one stays.
        assert_eq!(old_replicas(3, 2, c(0, 0), &[c(3, 1)]), vec![1]);
        // No room at all (maxUnavailable 0, nothing new available): nothing goes.
        assert_eq!(old_replicas(3, 0, c(0, 0), &[c(3, 1)]), vec![3]);
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let a = template_hash(br#"{"spec":{"containers":[{"image":"nginx"}]}}"#, 0);
        assert_eq!(
            a,
            template_hash(br#"{"spec":{"containers":[{"image":"nginx"}]}}"#, 0)
        );
        assert_ne!(
            a,
            template_hash(br#"{"spec":{"containers":[{"image":"httpd"}]}}"#, 0)
        );
        assert_ne!(
            a,
            template_hash(br#"{"spec":{"containers":[{"image":"nginx"}]}}"#, 1)
        );
        assert!(
            !a.is_empty()
                && a.chars()
                    .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)),
            "{a}"
        );
    }

    #[test]
    fn a_paused_deployment_scales_its_sets_in_proportion() {
        // One active set takes the whole count.
        assert_eq!(paused_replicas(5, 1, &[0, 3], 0), [0, 5]);
        // None active: the newest.
        assert_eq!(paused_replicas(4, 1, &[0, 0], 0), [4, 0]);
        // Mid-rollout: 10 + 2 surge shared 2:4, leftovers to the largest.
        assert_eq!(paused_replicas(10, 2, &[2, 4], 0), [4, 8]);
        assert_eq!(paused_replicas(4, 1, &[3, 3], 0), [3, 2]);
        // Scaling down works the same way.
        assert_eq!(paused_replicas(2, 0, &[3, 3], 0), [1, 1]);
    }
}
