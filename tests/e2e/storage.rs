//! Persistent storage (issue 9) with the real kubectl: the `kv` stand-in as a 3-replica
//! StatefulSet with a volumeClaimTemplate on the default `local-path` class keeps each
//! ordinal's data through pod deletions (back on the same nodes) and a scale to 1 and back;
//! usage is reported on the claims; `Delete` removes volume and directory while `Retain`
//! keeps both; an emptyDir loses its files with the pod while a claim keeps them;
//! WaitForFirstConsumer holds a claim Pending until a pod uses it; a static PV binds; an
//! unsatisfiable claim leaves its pod Pending with an Event; the notes' StorageClass.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::{Cluster, FAST, TOOLBOX, eventually};

/// Timers shortened for the storage tests.
const STORAGE: &[&str] = &[
    "--pvclaimbinder-sync-period",
    "1s",
    "--volume-stats-agg-period",
    "1s",
];

const DB: &str = "apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - port: 6379
---
apiVersion: apps/v1
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
      terminationGracePeriodSeconds: 2
      containers:
      - name: redis
        image: redis
        ports:
        - containerPort: 6379
        readinessProbe:
          tcpSocket: {port: 6379}
          periodSeconds: 1
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local-path
      resources:
        requests:
          storage: 64Mi
";

fn flags(nodes: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    let mut flags = vec!["--nodes", nodes];
    flags.extend_from_slice(FAST);
    flags.extend_from_slice(STORAGE);
    flags.extend_from_slice(extra);
    flags
}

/// The node each StatefulSet pod runs on.
fn placement(cluster: &Cluster) -> BTreeMap<String, String> {
    (0..3)
        .map(|i| {
            let pod = format!("db-{i}");
            let node = cluster.jsonpath(&["pod", &pod], "{.spec.nodeName}");
            (pod, node)
        })
        .collect()
}

#[test]
fn statefulset_claims_keep_each_ordinals_data() {
    let Some(cluster) = Cluster::up_with_kubectl("storage::sts", &flags("3", &[])) else {
        return;
    };
    cluster.apply_yaml(DB);
    cluster.apply_yaml(TOOLBOX);
    cluster.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    cluster.wait_running("toolbox");

    // One claim per ordinal, each Bound to a volume made on its pod's node.
    let claims = cluster.kubectl_ok(&["get", "pvc"]);
    for i in 0..3 {
        let row = claims
            .lines()
            .find(|l| l.starts_with(&format!("data-db-{i} ")))
            .unwrap_or_else(|| panic!("{claims}"));
        assert!(
            row.contains("Bound") && row.contains("local-path") && row.contains("64Mi"),
            "{row}"
        );
    }
    let volumes = cluster.kubectl_ok(&["get", "pv"]);
    assert_eq!(volumes.matches("Delete").count(), 3, "{volumes}");
    assert!(volumes.contains("default/data-db-1"), "{volumes}");
    let before = placement(&cluster);

    // Keys written through the headless Service's pod names: ordinal i counts to i + 1.
    for i in 0..3 {
        for _ in 0..=i {
            cluster.exec_sh(
                "toolbox",
                &format!("wget -qO- --post-data= http://db-{i}.db:6379/keys/k{i}/incr"),
            );
        }
    }
    let read = |i: usize| {
        cluster.exec_sh(
            "toolbox",
            &format!("wget -qO- -T 5 http://db-{i}.db:6379/keys/k{i}"),
        )
    };

    // Every pod deleted: they come back on the same nodes (the volumes' node affinity),
    // with their data.
    cluster.kubectl_ok(&["delete", "pod", "db-0", "db-1", "db-2"]);
    cluster.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    eventually(Duration::from_secs(60), || {
        let now = placement(&cluster);
        if now == before && (0..3).all(|i| cluster.phase(&format!("db-{i}")) == "Running") {
            Ok(())
        } else {
            Err(format!("{now:?} vs {before:?}"))
        }
    });
    for i in 0..3 {
        eventually(Duration::from_secs(30), || {
            let got = read(i);
            if got.trim() == (i + 1).to_string() {
                Ok(())
            } else {
                Err(got)
            }
        });
    }

    // Scale to 1 and back: the claims stay and each ordinal finds its data again.
    cluster.kubectl_ok(&["scale", "statefulset/db", "--replicas=1"]);
    eventually(Duration::from_secs(60), || {
        let pods = cluster.kubectl_ok(&["get", "pods", "-l", "app=db", "-o", "name"]);
        if pods.lines().count() == 1 {
            Ok(())
        } else {
            Err(pods)
        }
    });
    let kept = cluster.kubectl_ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(
        kept.lines().count(),
        3,
        "claims are kept on scale-down: {kept}"
    );
    cluster.kubectl_ok(&["scale", "statefulset/db", "--replicas=3"]);
    cluster.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    assert_eq!(read(2).trim(), "3");

    // Usage is reported on the claim, which `describe pvc` shows.
    eventually(Duration::from_secs(30), || {
        let used = cluster.jsonpath(
            &["pvc", "data-db-0"],
            r"{.metadata.annotations.wasmkube\.io/used-bytes}",
        );
        if used.parse::<u64>().is_ok_and(|n| n > 0) {
            Ok(())
        } else {
            Err(used)
        }
    });
    let described = cluster.kubectl_ok(&["describe", "pvc", "data-db-0"]);
    assert!(described.contains("wasmkube.io/used-bytes"), "{described}");

    // Reclaim policy Delete: the claim's deletion takes the volume and its directory.
    let pv = cluster.jsonpath(&["pvc", "data-db-2"], "{.spec.volumeName}");
    let dir = PathBuf::from(cluster.jsonpath(&["pv", &pv], "{.spec.hostPath.path}"));
    assert!(dir.exists(), "{}", dir.display());
    cluster.kubectl_ok(&["scale", "statefulset/db", "--replicas=2"]);
    cluster.kubectl_ok(&["delete", "pvc", "data-db-2", "--wait=false"]);
    eventually(Duration::from_secs(60), || {
        let gone = !cluster
            .kubectl_ok(&["get", "pv", "-o", "name"])
            .contains(&pv);
        if gone && !dir.exists() {
            Ok(())
        } else {
            Err(format!("pv gone: {gone}, dir exists: {}", dir.exists()))
        }
    });
}

#[test]
fn claims_wait_bind_and_are_reclaimed_by_policy() {
    let host_dir = tempfile::tempdir().unwrap();
    let Some(cluster) =
        Cluster::up_with_kubectl("storage::claims", &flags("2", &["--allow-host-path"]))
    else {
        return;
    };

    // The default class, as k3s ships it and the notes show it.
    let described = cluster.kubectl_ok(&["describe", "sc", "local-path"]);
    let want = "Name:            local-path\nIsDefaultClass:  Yes\nAnnotations:     kubectl.kubernetes.io/last-applied-configuration={\"apiVersion\":\"storage.k8s.io/v1\",\"kind\":\"StorageClass\",\"metadata\":{\"annotations\":{},\"name\":\"local-path\"},\"provisioner\":\"rancher.io/local-path\",\"reclaimPolicy\":\"Delete\",\"volumeBindingMode\":\"WaitForFirstConsumer\"}\n,storageclass.kubernetes.io/is-default-class=true\nProvisioner:           rancher.io/local-path\nParameters:            <none>\nAllowVolumeExpansion:  <unset>\nMountOptions:          <none>\nReclaimPolicy:         Delete\nVolumeBindingMode:     WaitForFirstConsumer\nEvents:                <none>\n";
    assert_eq!(described, want);
    // The notes' manifest applies unchanged.
    cluster.apply_yaml("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\n  name: local-path\n# \nprovisioner: rancher.io/local-path\n# PV回收策略\nreclaimPolicy: Delete\n# \nvolumeBindingMode: WaitForFirstConsumer\n# 不允许\nallowVolumeExpansion: false\n",
    );
    let described = cluster.kubectl_ok(&["describe", "sc", "local-path"]);
    assert!(
        described.contains("AllowVolumeExpansion:  False"),
        "{described}"
    );
    assert!(
        described.contains("VolumeBindingMode:     WaitForFirstConsumer"),
        "{described}"
    );

    // WaitForFirstConsumer: Pending (and saying so) until a pod uses the claim.
    cluster.apply_yaml("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: keep\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1Mi}\n",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.jsonpath(&["pvc", "keep"], "{.status.phase}"),
        "Pending"
    );
    assert_eq!(
        cluster.jsonpath(&["pvc", "keep"], "{.spec.storageClassName}"),
        "local-path",
        "the default class is filled in"
    );
    let events = cluster.kubectl_ok(&["describe", "pvc", "keep"]);
    assert!(events.contains("WaitForFirstConsumer"), "{events}");

    // emptyDir against a claim: the pod's files in the claim outlive it.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: scratch\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: sh\n    image: busybox\n    command: [sleep, '3600']\n    volumeMounts:\n    - {name: tmp, mountPath: /tmp}\n    - {name: keep, mountPath: /keep}\n  volumes:\n  - {name: tmp, emptyDir: {}}\n  - name: keep\n    persistentVolumeClaim: {claimName: keep}\n";
    cluster.apply_yaml(pod);
    cluster.wait_running("scratch");
    assert_eq!(
        cluster.jsonpath(&["pvc", "keep"], "{.status.phase}"),
        "Bound"
    );
    cluster.exec_sh("scratch", "echo gone > /tmp/f; echo kept > /keep/f");
    cluster.kubectl_ok(&["delete", "pod", "scratch"]);
    cluster.apply_yaml(pod);
    cluster.wait_running("scratch");
    let after = cluster.exec_sh("scratch", "cat /keep/f; cat /tmp/f || echo no-tmp-file");
    assert_eq!(
        after.lines().collect::<Vec<_>>(),
        ["kept", "no-tmp-file"],
        "{after}"
    );

    // Retain: an Immediate class binds at once; deleting the claim leaves the volume
    // Released with its data.
    cluster.apply_yaml("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: keep-data\nprovisioner: rancher.io/local-path\nreclaimPolicy: Retain\nvolumeBindingMode: Immediate\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: retained\nspec:\n  storageClassName: keep-data\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1Mi}\n",
    );
    eventually(Duration::from_secs(30), || {
        let phase = cluster.jsonpath(&["pvc", "retained"], "{.status.phase}");
        (phase == "Bound").then_some(()).ok_or(phase)
    });
    let pv = cluster.jsonpath(&["pvc", "retained"], "{.spec.volumeName}");
    cluster.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: writer\nspec:\n  restartPolicy: Never\n  containers:\n  - name: sh\n    image: busybox\n    command: [sh, -c, 'echo precious > /data/f']\n    volumeMounts:\n    - {name: data, mountPath: /data}\n  volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: retained}\n",
    );
    cluster.wait_for("writer", "{.status.phase}", "Succeeded");
    cluster.kubectl_ok(&["delete", "pod", "writer"]);
    cluster.kubectl_ok(&["delete", "pvc", "retained"]);
    eventually(Duration::from_secs(30), || {
        let phase = cluster.jsonpath(&["pv", &pv], "{.status.phase}");
        (phase == "Released").then_some(()).ok_or(phase)
    });
    let dir = PathBuf::from(cluster.jsonpath(&["pv", &pv], "{.spec.hostPath.path}"));
    assert_eq!(
        std::fs::read_to_string(dir.join("f")).unwrap(),
        "precious\n"
    );

    // A static volume (no class) binds to a claim with storageClassName "".
    cluster.apply_yaml(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: static\nspec:\n  storageClassName: \"\"\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: {}}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: static-claim\nspec:\n  storageClassName: \"\"\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {{storage: 100Mi}}\n",
            host_dir.path().display()
        ),
    );
    eventually(Duration::from_secs(30), || {
        let bound = cluster.jsonpath(
            &["pvc", "static-claim"],
            "{.status.phase} {.spec.volumeName}",
        );
        (bound == "Bound static").then_some(()).ok_or(bound)
    });

    // An unsatisfiable claim: Pending with an Event, and its pod unschedulable saying why.
    cluster.apply_yaml("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: nothing\nspec:\n  storageClassName: \"\"\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 10Ti}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: stuck\nspec:\n  containers:\n  - name: sh\n    image: busybox\n    command: [sleep, '3600']\n    volumeMounts:\n    - {name: data, mountPath: /data}\n  volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: nothing}\n",
    );
    eventually(Duration::from_secs(30), || {
        let events = cluster.kubectl_ok(&["describe", "pod", "stuck"]);
        if events.contains("FailedScheduling")
            && events.contains("unbound immediate PersistentVolumeClaims")
        {
            Ok(())
        } else {
            Err(events)
        }
    });
    assert_eq!(cluster.phase("stuck"), "Pending");
    let claim = cluster.kubectl_ok(&["describe", "pvc", "nothing"]);
    assert!(claim.contains("FailedBinding"), "{claim}");
}
