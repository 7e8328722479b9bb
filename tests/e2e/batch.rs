//! StatefulSets, DaemonSets, Jobs and CronJobs (issue 7), with the real kubectl: ordered and
//! stable pods, one pod per node following nodes, completions and back-off limits, schedules
//! and their history limits.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::nodes::{NodeProcess, start_nodes};
use crate::support::{Cluster, FAST, OutputExt, eventually};

/// Names of the live (not terminating) pods matching `selector`.
fn live(cluster: &Cluster, selector: &str) -> BTreeSet<String> {
    let out = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| {
            let (name, deleting) = l.split_once(' ').unwrap_or((l, ""));
            deleting.trim().is_empty().then(|| name.to_string())
        })
        .collect()
}

const DB: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: redis
        image: redis
        readinessProbe:
          tcpSocket: {port: 6379}
          periodSeconds: 1
";

#[test]
fn statefulsets_start_and_scale_in_order_and_jobs_complete() {
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--job-backoff-base", "200ms", "--job-backoff-max", "1s"]);
    let Some(cluster) = Cluster::up_with_kubectl("batch::sts_jobs", &flags) else {
        return;
    };
    cluster.apply_yaml(DB);
    // OrderedReady: each ordinal is created only once the one before it is Ready.
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    eventually(Duration::from_secs(60), || {
        let now = live(&cluster, "app=db");
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now.len() == 3 {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    for set in &seen {
        let want: BTreeSet<String> = (0..set.len()).map(|i| format!("db-{i}")).collect();
        assert_eq!(set, &want, "pods appear in ordinal order: {seen:?}");
    }
    for i in 1..3 {
        let created = cluster.jsonpath(
            &["pod", &format!("db-{i}")],
            "{.metadata.creationTimestamp}",
        );
        let before_ready = cluster.jsonpath(
            &["pod", &format!("db-{}", i - 1)],
            r#"{.status.conditions[?(@.type=="Ready")].lastTransitionTime}"#,
        );
        assert!(
            created >= before_ready,
            "db-{i} created {created}, db-{} ready {before_ready}",
            i - 1
        );
    }
    let hostname = cluster.jsonpath(&["pod", "db-1"], "{.spec.hostname}.{.spec.subdomain}");
    assert_eq!(hostname, "db-1.db");

    // A deleted member comes back under its own name.
    let uid = cluster.jsonpath(&["pod", "db-1"], "{.metadata.uid}");
    cluster.kubectl_ok(&["delete", "pod", "db-1", "--wait=false"]);
    eventually(Duration::from_secs(60), || {
        let now = cluster.kubectl(&[
            "get",
            "pod",
            "db-1",
            "-o",
            "jsonpath={.metadata.uid} {.status.phase}",
        ]);
        let text = now.stdout_text();
        if now.status.success() && !text.starts_with(&uid) && text.ends_with("Running") {
            Ok(())
        } else {
            Err(text)
        }
    });

    // Scaling down removes the highest ordinal first.
    cluster.kubectl_ok(&["scale", "statefulset", "db", "--replicas=1"]);
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    eventually(Duration::from_secs(60), || {
        let now = live(&cluster, "app=db");
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now.len() == 1 {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    for set in &seen {
        let want: BTreeSet<String> = (0..set.len()).map(|i| format!("db-{i}")).collect();
        assert_eq!(set, &want, "the highest ordinal goes first: {seen:?}");
    }

    // A rolling update through ControllerRevisions, and `kubectl rollout history|undo sts`.
    let image = |c: &Cluster| c.jsonpath(&["pod", "db-0"], "{.spec.containers[0].image}");
    cluster.kubectl_ok(&["set", "image", "statefulset/db", "redis=redis:7.2"]);
    eventually(Duration::from_secs(60), || {
        let i = image(&cluster);
        if i == "redis:7.2" { Ok(()) } else { Err(i) }
    });
    cluster.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    let history = cluster.kubectl_ok(&["rollout", "history", "statefulset/db"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    cluster.kubectl_ok(&["rollout", "undo", "statefulset/db"]);
    eventually(Duration::from_secs(60), || {
        let i = image(&cluster);
        if i == "redis" { Ok(()) } else { Err(i) }
    });
    cluster.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);

    // A Job of 5 completions, 2 at a time, completes.
    cluster.apply_yaml("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: five\nspec:\n  completions: 5\n  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: work\n        image: busybox\n        command: [sh, -c, 'sleep 0.2; echo done']\n",
    );
    // A failing Job stops at its backoffLimit.
    cluster.apply_yaml("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: fails\nspec:\n  backoffLimit: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: work\n        image: busybox\n        command: [sh, -c, 'exit 3']\n",
    );
    let most_active = std::cell::Cell::new(0usize);
    eventually(Duration::from_secs(90), || {
        let active = cluster
            .jsonpath(&["job", "five"], "{.status.active}")
            .parse()
            .unwrap_or(0);
        most_active.set(most_active.get().max(active));
        let done = cluster.jsonpath(
            &["job", "five"],
            r#"{.status.succeeded} {.status.conditions[?(@.type=="Complete")].status}"#,
        );
        if done == "5 True" { Ok(()) } else { Err(done) }
    });
    assert!(
        most_active.get() <= 2,
        "parallelism 2, saw {} active",
        most_active.get()
    );
    let reason = eventually(Duration::from_secs(90), || {
        let r = cluster.jsonpath(
            &["job", "fails"],
            r#"{.status.conditions[?(@.type=="Failed")].reason}"#,
        );
        if r.is_empty() {
            Err("not failed yet".into())
        } else {
            Ok(r)
        }
    });
    assert_eq!(reason, "BackoffLimitExceeded");
    let failed = cluster.jsonpath(&["job", "fails"], "{.status.failed}");
    assert_eq!(failed, "3", "backoffLimit 2 allows 3 tries");
    let logs = cluster.kubectl_ok(&["logs", "job/five"]);
    assert!(logs.contains("done"), "{logs}");
}

#[test]
fn cronjobs_run_on_schedule_and_keep_their_history() {
    let Some(cluster) = Cluster::up_with_kubectl("batch::cron", FAST) else {
        return;
    };
    // wasmkube's seconds field (robfig/cron style) lets the test run in seconds.
    cluster.apply_yaml("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: '*/2 * * * * *'\n  successfulJobsHistoryLimit: 2\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: tick\n            image: busybox\n            command: [sh, -c, 'echo tick']\n",
    );
    let jobs = |c: &Cluster| -> Vec<String> {
        c.kubectl_ok(&["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"])
            .split_whitespace()
            .filter(|n| n.starts_with("tick-"))
            .map(str::to_string)
            .collect()
    };
    let mut all_seen = BTreeSet::new();
    eventually(Duration::from_secs(60), || {
        all_seen.extend(jobs(&cluster));
        if all_seen.len() >= 4 {
            Ok(())
        } else {
            Err(format!("{all_seen:?}"))
        }
    });
    eventually(Duration::from_secs(30), || {
        let complete = cluster.kubectl_ok(&[
            "get",
            "jobs",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.succeeded} {end}"#,
        ]);
        let finished = complete
            .split_whitespace()
            .filter(|j| j.starts_with("tick-") && j.ends_with("=1"))
            .count();
        if finished <= 2 { Ok(()) } else { Err(complete) }
    });
    let last = cluster.jsonpath(&["cronjob", "tick"], "{.status.lastScheduleTime}");
    assert!(!last.is_empty());

    // `kubectl create job --from=cronjob/...` runs the template once by hand.
    cluster.kubectl_ok(&[
        "patch",
        "cronjob",
        "tick",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    cluster.kubectl_ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    eventually(Duration::from_secs(60), || {
        let s = cluster.jsonpath(&["job", "manual"], "{.status.succeeded}");
        if s == "1" { Ok(()) } else { Err(s) }
    });
}

const AGENT: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox
        command: [sleep, '3600']
";

#[test]
fn daemonsets_follow_nodes_joining_and_leaving() {
    let Some(cluster) = Cluster::server_with_kubectl("batch::daemonset", &[]) else {
        return;
    };
    let _nodes = start_nodes(&cluster, &["node-a", "node-b"], &[]);
    cluster.apply_yaml(AGENT);
    let on_nodes = |c: &Cluster| -> BTreeSet<String> {
        c.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect()
    };
    let want = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    eventually(Duration::from_secs(60), || {
        let now = on_nodes(&cluster);
        if now == want(&["node-a", "node-b"]) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    let mut third = NodeProcess::start(&cluster, "node-c", 3, &[]);
    eventually(Duration::from_secs(60), || {
        let now = on_nodes(&cluster);
        if now == want(&["node-a", "node-b", "node-c"]) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    let status = cluster.jsonpath(
        &["ds", "agent"],
        "{.status.desiredNumberScheduled}/{.status.numberReady}",
    );
    assert_eq!(status, "3/3");
    third.kill();
    cluster.kubectl_ok(&["delete", "node", "node-c"]);
    eventually(Duration::from_secs(60), || {
        let pods = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ]);
        if pods.contains("node-c") {
            Err(pods)
        } else {
            Ok(())
        }
    });
    let status = cluster.jsonpath(&["ds", "agent"], "{.status.desiredNumberScheduled}");
    assert_eq!(status, "2");
}
