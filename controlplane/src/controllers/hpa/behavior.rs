//! From a metric's recommendation to the replica count the HPA sets: stabilization windows
//! and rate limits, as kube-controller-manager's `normalizeDesiredReplicas` (no `behavior`:
//! a downscale stabilization window from `--horizontal-pod-autoscaler-downscale-stabilization`
//! and a scale-up limit of `max(2 x current, 4)`) and `normalizeDesiredReplicasWithBehaviors`
//! (`stabilizationWindowSeconds`, `Pods`/`Percent` policies per period, `selectPolicy`
//! `Max`/`Min`/`Disabled`). Pure: the caller keeps each HPA's [`History`].

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// A recommendation the HPA made, with when.
#[derive(Debug, Clone, Copy)]
struct Recommendation {
    replicas: i32,
    at: Instant,
}

/// A change the HPA made to the target's scale.
#[derive(Debug, Clone, Copy)]
struct ScaleEvent {
    change: i32,
    at: Instant,
}

/// What the HPA remembers of one autoscaler between syncs (kube keeps the same in memory:
/// after a controller restart stabilization starts afresh).
#[derive(Debug, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    ups: Vec<ScaleEvent>,
    downs: Vec<ScaleEvent>,
}

/// A condition the normalization sets, with its reason and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `AbleToScale`: `ReadyForNewScale`, `ScaleUpStabilized` or `ScaleDownStabilized`.
    pub able: (&'static str, &'static str),
    /// `ScalingLimited`: whether the rate or the bounds cut the recommendation, and why.
    pub limited: (bool, &'static str, &'static str),
}

/// Inputs of one normalization.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    /// The target's replicas now.
    pub current: i32,
    /// What the metrics recommend.
    pub desired: i32,
    /// `minReplicas`.
    pub min: i32,
    /// `maxReplicas`.
    pub max: i32,
    /// `spec.behavior` (defaulted by the API server when set).
    pub behavior: Option<&'a HorizontalPodAutoscalerBehavior>,
    /// The controller's downscale stabilization window (for rules without one).
    pub downscale_window: Duration,
}

const WITHIN: (bool, &str, &str) = (
    false,
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);

impl History {
    /// The replica count to set, and the conditions that explain it.
    pub fn normalize(&mut self, args: Args<'_>, now: Instant) -> (i32, Verdict) {
        match args.behavior {
            None => self.without_behavior(args, now),
            Some(b) => self.with_behavior(args, b, now),
        }
    }

    /// Records a change of the target's scale from `from` to `to`.
    pub fn scaled(&mut self, from: i32, to: i32, now: Instant, longest_period: Duration) {
        let keep = |e: &ScaleEvent| now.duration_since(e.at) <= longest_period;
        self.ups.retain(keep);
        self.downs.retain(keep);
        let event = ScaleEvent {
            change: (to - from).abs(),
            at: now,
        };
        if to > from {
            self.ups.push(event);
        } else if to < from {
            self.downs.push(event);
        }
    }

    /// Replaces the oldest recommendation outside `window` or adds one.
    fn record(&mut self, desired: i32, now: Instant, window: Duration) {
        let rec = Recommendation {
            replicas: desired,
            at: now,
        };
        match self
            .recommendations
            .iter_mut()
            .find(|r| now.duration_since(r.at) > window)
        {
            Some(old) => *old = rec,
            None => self.recommendations.push(rec),
        }
    }

    fn without_behavior(&mut self, a: Args<'_>, now: Instant) -> (i32, Verdict) {
        let stabilized = self
            .recommendations
            .iter()
            .filter(|r| now.duration_since(r.at) <= a.downscale_window)
            .map(|r| r.replicas)
            .fold(a.desired, i32::max);
        self.record(a.desired, now, a.downscale_window);
        let able = if stabilized != a.desired {
            (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        } else {
            ("ReadyForNewScale", "recommended size matches current size")
        };
        let scale_up_limit = (2 * a.current).max(4);
        let (upper, upper_reason) = if a.max > scale_up_limit {
            (
                scale_up_limit,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                a.max,
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        };
        let (replicas, limited) = if stabilized < a.min {
            (
                a.min,
                (
                    true,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        } else if stabilized > upper {
            (upper, (true, upper_reason.0, upper_reason.1))
        } else {
            (stabilized, WITHIN)
        };
        (replicas, Verdict { able, limited })
    }

    fn with_behavior(
        &mut self,
        a: Args<'_>,
        b: &HorizontalPodAutoscalerBehavior,
        now: Instant,
    ) -> (i32, Verdict) {
        let window = |rules: Option<&HPAScalingRules>, default: Duration| {
            rules
                .and_then(|r| r.stabilization_window_seconds)
                .map_or(default, |s| Duration::from_secs(s.max(0) as u64))
        };
        let up_window = window(b.scale_up.as_ref(), Duration::ZERO);
        let down_window = window(b.scale_down.as_ref(), a.downscale_window);
        let (mut up, mut down) = (a.desired, a.desired);
        for r in &self.recommendations {
            let age = now.duration_since(r.at);
            if age < up_window {
                up = up.min(r.replicas);
            }
            if age < down_window {
                down = down.max(r.replicas);
            }
        }
        let stabilized = a.current.max(up).min(down);
        self.record(a.desired, now, up_window.max(down_window));
        let able = if stabilized != a.desired {
            if a.desired >= a.current {
                (
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation",
                )
            } else {
                (
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying the highest recent recommendation",
                )
            }
        } else {
            ("ReadyForNewScale", "recommended size matches current size")
        };
        let (replicas, limited) = self.rate_limit(a, b, stabilized, now);
        (replicas, Verdict { able, limited })
    }

    /// Replicas added (`ups`) or removed (`downs`) within `period`.
    fn changed_within(events: &[ScaleEvent], period: Duration, now: Instant) -> i32 {
        events
            .iter()
            .filter(|e| now.duration_since(e.at) < period)
            .map(|e| e.change)
            .sum()
    }

    fn rate_limit(
        &self,
        a: Args<'_>,
        b: &HorizontalPodAutoscalerBehavior,
        desired: i32,
        now: Instant,
    ) -> (i32, (bool, &'static str, &'static str)) {
        let limited =
            |n: i32, reason: (&'static str, &'static str)| (n, (true, reason.0, reason.1));
        if desired > a.current {
            let limit = self
                .limit(b.scale_up.as_ref(), a.current, true, now)
                .max(a.current);
            let (upper, reason) = if a.max > limit {
                (
                    limit,
                    (
                        "ScaleUpLimit",
                        "the desired replica count is increasing faster than the maximum scale rate",
                    ),
                )
            } else {
                (
                    a.max,
                    (
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    ),
                )
            };
            if desired > upper {
                return limited(upper, reason);
            }
        } else if desired < a.current {
            let limit = self
                .limit(b.scale_down.as_ref(), a.current, false, now)
                .min(a.current);
            let (lower, reason) = if a.min < limit {
                (
                    limit,
                    (
                        "ScaleDownLimit",
                        "the desired replica count is decreasing faster than the maximum scale rate",
                    ),
                )
            } else {
                (
                    a.min,
                    (
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    ),
                )
            };
            if desired < lower {
                return limited(lower, reason);
            }
        }
        (desired, WITHIN)
    }

    /// The most (scaling up) or least (down) replicas the rules' policies allow now.
    fn limit(&self, rules: Option<&HPAScalingRules>, current: i32, up: bool, now: Instant) -> i32 {
        let select = rules
            .and_then(|r| r.select_policy.as_deref())
            .unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        let policies = rules
            .and_then(|r| r.policies.as_deref())
            .unwrap_or_default();
        if policies.is_empty() {
            return if up { i32::MAX } else { i32::MIN };
        }
        // Max picks the biggest change: the highest limit up, the lowest limit down.
        let biggest_change = select != "Min";
        let mut result: Option<i32> = None;
        for p in policies {
            let period = Duration::from_secs(p.period_seconds.max(0) as u64);
            let start = current - Self::changed_within(&self.ups, period, now)
                + Self::changed_within(&self.downs, period, now);
            let proposed = match (p.type_.as_str(), up) {
                ("Pods", true) => start.saturating_add(p.value),
                ("Pods", false) => start - p.value,
                (_, true) => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
                (_, false) => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
            };
            result = Some(match result {
                None => proposed,
                Some(r) if up == biggest_change => r.max(proposed),
                Some(r) => r.min(proposed),
            });
        }
        result.unwrap_or(current)
    }
}

/// The longest policy period of `behavior` (how long scale events matter).
pub fn longest_period(behavior: Option<&HorizontalPodAutoscalerBehavior>) -> Duration {
    behavior
        .into_iter()
        .flat_map(|b| [b.scale_up.as_ref(), b.scale_down.as_ref()])
        .flatten()
        .flat_map(|r| r.policies.iter().flatten())
        .map(|p| Duration::from_secs(p.period_seconds.max(0) as u64))
        .max()
        .unwrap_or(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    fn args(current: i32, desired: i32) -> Args<'static> {
        Args {
            current,
            desired,
            min: 1,
            max: 10,
            behavior: None,
            downscale_window: Duration::from_secs(300),
        }
    }

    #[test]
    fn without_behavior_scale_down_waits_for_the_window() {
        let mut h = History::default();
        let t0 = Instant::now();
        assert_eq!(h.normalize(args(3, 5), t0).0, 5);
        let (n, v) = h.normalize(args(5, 1), t0 + Duration::from_secs(60));
        assert_eq!(
            n, 5,
            "the highest recommendation of the last 5 minutes wins"
        );
        assert_eq!(v.able.0, "ScaleDownStabilized");
        let (n, _) = h.normalize(args(5, 1), t0 + Duration::from_secs(301));
        assert_eq!(n, 1, "once the window has passed");
    }

    #[test]
    fn without_behavior_scale_up_is_at_most_double_or_four() {
        let mut h = History::default();
        let (n, v) = h.normalize(args(1, 9), Instant::now());
        assert_eq!(n, 4);
        assert_eq!(
            v.limited,
            (
                true,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate"
            )
        );
        let (n, v) = History::default().normalize(args(8, 30), Instant::now());
        assert_eq!((n, v.limited.1), (10, "TooManyReplicas"));
        let (n, v) = History::default().normalize(args(3, 0), Instant::now());
        assert_eq!((n, v.limited.1), (1, "TooFewReplicas"));
    }

    fn rules(window: i32, select: &str, policies: &[(&str, i32, i32)]) -> HPAScalingRules {
        HPAScalingRules {
            stabilization_window_seconds: Some(window),
            select_policy: Some(select.into()),
            policies: Some(
                policies
                    .iter()
                    .map(|(t, v, p)| HPAScalingPolicy {
                        type_: t.to_string(),
                        value: *v,
                        period_seconds: *p,
                    })
                    .collect(),
            ),
            tolerance: None,
        }
    }

    #[test]
    fn policies_limit_the_rate_per_period() {
        // Kubernetes' default scale-up rules: +4 pods or +100% per 15 s, whichever is more.
        let b = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(0, "Max", &[("Pods", 4, 15), ("Percent", 100, 15)])),
            scale_down: Some(rules(0, "Max", &[("Pods", 1, 60)])),
        };
        let mut h = History::default();
        let t0 = Instant::now();
        let a = |current, desired| Args {
            behavior: Some(&b),
            max: 20,
            ..args(current, desired)
        };
        assert_eq!(h.normalize(a(2, 20), t0).0, 6, "2 + 4 beats 2 x 2");
        h.scaled(2, 6, t0, longest_period(Some(&b)));
        let (n, v) = h.normalize(a(6, 20), t0 + Duration::from_secs(5));
        assert_eq!(
            (n, v.limited.1),
            (6, "ScaleUpLimit"),
            "the period's budget is spent"
        );
        assert_eq!(h.normalize(a(6, 20), t0 + Duration::from_secs(16)).0, 12);
        // One pod per minute down.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(h.normalize(a(12, 1), t1).0, 11);
        h.scaled(12, 11, t1, longest_period(Some(&b)));
        assert_eq!(h.normalize(a(11, 1), t1 + Duration::from_secs(30)).0, 11);
        let disabled = HorizontalPodAutoscalerBehavior {
            scale_down: Some(rules(0, "Disabled", &[("Percent", 100, 15)])),
            ..b.clone()
        };
        let a = Args {
            behavior: Some(&disabled),
            ..args(5, 1)
        };
        assert_eq!(History::default().normalize(a, t0).0, 5);
    }

    #[test]
    fn scale_up_stabilization_takes_the_lowest_recent_recommendation() {
        let b = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(60, "Max", &[("Percent", 100, 15)])),
            scale_down: Some(rules(0, "Max", &[("Percent", 100, 15)])),
        };
        let a = |current, desired| Args {
            behavior: Some(&b),
            ..args(current, desired)
        };
        let mut h = History::default();
        let t0 = Instant::now();
        assert_eq!(h.normalize(a(2, 2), t0).0, 2);
        let (n, v) = h.normalize(a(2, 4), t0 + Duration::from_secs(10));
        assert_eq!((n, v.able.0), (2, "ScaleUpStabilized"));
        assert_eq!(h.normalize(a(2, 4), t0 + Duration::from_secs(61)).0, 4);
    }
}
