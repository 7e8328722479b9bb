//! Tests of volumes.rs.

use super::*;
use k8s_openapi::api::core::v1::ObjectFieldSelector;

fn data() -> Option<BTreeMap<String, Vec<u8>>> {
    Some(BTreeMap::from([
        ("a.conf".into(), b"A".to_vec()),
        ("b.conf".into(), b"B".to_vec()),
    ]))
}

#[test]
fn all_keys_with_the_default_mode() {
    let files = key_files("cm", data(), None, None, false).unwrap();
    assert_eq!(
        files,
        vec![
            File {
                path: "a.conf".into(),
                data: b"A".to_vec(),
                mode: 0o644
            },
            File {
                path: "b.conf".into(),
                data: b"B".to_vec(),
                mode: 0o644
            },
        ]
    );
    let files = key_files("cm", data(), None, Some(0o400), false).unwrap();
    assert!(files.iter().all(|f| f.mode == 0o400));
}

#[test]
fn items_pick_keys_paths_and_modes() {
    let items = [KeyToPath {
        key: "b.conf".into(),
        path: "dir/b".into(),
        mode: Some(0o600),
        ..KeyToPath::default()
    }];
    let files = key_files("cm", data(), Some(&items), Some(0o444), false).unwrap();
    assert_eq!(
        files,
        vec![File {
            path: "dir/b".into(),
            data: b"B".to_vec(),
            mode: 0o600
        }]
    );
    let missing = [KeyToPath {
        key: "nope".into(),
        path: "x".into(),
        ..KeyToPath::default()
    }];
    assert!(matches!(
        key_files("cm", data(), Some(&missing), None, false),
        Err(Error::MissingKey { .. })
    ));
    assert!(
        key_files("cm", data(), Some(&missing), None, true)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn missing_objects_fail_unless_optional() {
    assert!(matches!(
        key_files("cm", None, None, None, false),
        Err(Error::NotFound { .. })
    ));
    assert!(key_files("cm", None, None, None, true).unwrap().is_empty());
}

#[test]
fn downward_api_files_from_pod_fields() {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web".into());
    pod.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    let facts = PodFacts {
        pod_ip: "127.64.0.9".into(),
        host_ip: "127.1.0.1".into(),
        node_name: "n1".into(),
        node_cpu_millis: 1000,
        node_memory_bytes: 1 << 20,
    };
    let item = |path: &str, field: &str| DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: field.into(),
            api_version: None,
        }),
        ..DownwardAPIVolumeFile::default()
    };
    let files = downward_files(
        &pod,
        &facts,
        &[
            item("name", "metadata.name"),
            item("labels", "metadata.labels"),
            item("ip", "status.podIP"),
        ],
        None,
    )
    .unwrap();
    let text: Vec<_> = files
        .iter()
        .map(|f| String::from_utf8(f.data.clone()).unwrap())
        .collect();
    assert_eq!(text, ["web", "app=\"web\"", "127.64.0.9"]);
}
