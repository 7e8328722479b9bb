//! Store behaviour both backends share: compare-and-swap, watch resume and `Gone`, group
//! commit under concurrency, and (redb) data surviving a reopen.

use std::sync::Arc;

use serde_json::json;

use super::local::LocalStore;
use super::memory::{MemoryStore, Volatile};
use super::redb::RedbStore;
use super::{Error, EventType, Store, Write};

fn create(key: &str, n: i64) -> Write {
    Write::Create {
        key: key.into(),
        value: json!({"metadata": {"name": key}, "n": n}),
    }
}

#[tokio::test]
async fn update_with_stale_revision_conflicts_and_changes_nothing() {
    let store = MemoryStore::new();
    let first = store.write(create("/a", 1)).await.unwrap();
    let second = store
        .write(Write::Update {
            key: "/a".into(),
            value: json!({"n": 2}),
            expected: Some(first.revision),
        })
        .await
        .unwrap();
    assert!(second.revision > first.revision);
    assert_eq!(
        second.value["metadata"]["resourceVersion"],
        second.revision.to_string()
    );
    let stale = store
        .write(Write::Update {
            key: "/a".into(),
            value: json!({"n": 3}),
            expected: Some(first.revision),
        })
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    assert_eq!(store.get("/a").await.unwrap().unwrap().value["n"], 2);
    // Without a precondition an update is unconditional, as a PUT without resourceVersion.
    store
        .write(Write::Update {
            key: "/a".into(),
            value: json!({"n": 4}),
            expected: None,
        })
        .await
        .unwrap();
    assert_eq!(store.get("/a").await.unwrap().unwrap().value["n"], 4);
}

#[tokio::test]
async fn create_twice_is_already_exists_and_delete_missing_is_not_found() {
    let store = MemoryStore::new();
    store.write(create("/a", 1)).await.unwrap();
    assert!(matches!(
        store.write(create("/a", 2)).await,
        Err(Error::AlreadyExists { .. })
    ));
    let gone = store
        .write(Write::Delete {
            key: "/b".into(),
            expected: None,
        })
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn list_is_by_prefix_in_key_order() {
    let store = MemoryStore::new();
    for key in ["/r/pods/b", "/r/pods/a", "/r/podsx/c", "/r/svc/a"] {
        store.write(create(key, 0)).await.unwrap();
    }
    let (items, revision) = store.list("/r/pods/").await.unwrap();
    let names: Vec<_> = items
        .iter()
        .map(|i| i.value["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/r/pods/a", "/r/pods/b"]);
    assert_eq!(revision, store.revision());
}

#[tokio::test]
async fn watch_resumes_after_a_revision_then_follows_live_writes() {
    let store = MemoryStore::new();
    let a = store.write(create("/p/a", 1)).await.unwrap();
    store.write(create("/p/b", 2)).await.unwrap();
    store.write(create("/q/x", 3)).await.unwrap();
    let mut watch = store.watch("/p/", a.revision).unwrap();
    let e = watch.next().await.unwrap();
    assert_eq!((e.key.as_str(), e.kind), ("/p/b", EventType::Added));
    store
        .write(Write::Delete {
            key: "/p/a".into(),
            expected: None,
        })
        .await
        .unwrap();
    let e = watch.next().await.unwrap();
    assert_eq!((e.key.as_str(), e.kind), ("/p/a", EventType::Deleted));
    assert_eq!(e.object["n"], 1, "a deletion carries the last state");
}

#[tokio::test]
async fn watch_from_before_the_kept_history_is_gone() {
    let store = LocalStore::open(Volatile, 2).unwrap();
    for i in 0..5 {
        store.write(create(&format!("/k{i}"), i)).await.unwrap();
    }
    assert!(matches!(store.watch("/", 1), Err(Error::Gone { .. })));
    assert!(store.watch("/", store.revision() - 1).is_ok());
}

#[tokio::test]
async fn concurrent_writers_all_commit_with_distinct_revisions() {
    let store = Arc::new(MemoryStore::new());
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(create(&format!("/c/{i}"), i))
                    .await
                    .unwrap()
                    .revision
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 64);
    assert_eq!(store.list("/c/").await.unwrap().0.len(), 64);
}

#[tokio::test]
async fn redb_keeps_objects_and_revision_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let (revision, deleted_at) = {
        let store = RedbStore::open(&path).unwrap();
        store.write(create("/a", 1)).await.unwrap();
        let b = store.write(create("/b", 2)).await.unwrap();
        store
            .write(Write::Delete {
                key: "/b".into(),
                expected: Some(b.revision),
            })
            .await
            .unwrap();
        (
            store.get("/a").await.unwrap().unwrap().revision,
            store.revision(),
        )
    };
    // The writer thread releases the file once the store is dropped.
    let mut reopened = None;
    for _ in 0..50 {
        match RedbStore::open(&path) {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let store = reopened.expect("reopen the redb file");
    let a = store
        .get("/a")
        .await
        .unwrap()
        .expect("object survives a restart");
    assert_eq!(a.revision, revision);
    assert_eq!(a.value["n"], 1);
    assert!(store.get("/b").await.unwrap().is_none());
    assert!(
        store.revision() >= deleted_at,
        "the revision never goes backwards"
    );
    let next = store.write(create("/c", 3)).await.unwrap();
    assert!(next.revision > deleted_at);
}
