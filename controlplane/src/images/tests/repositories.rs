//! Tests of the image store's repositories: the catalog and tag lists, deletes, name
//! validation, size limits, upload sessions and cross-repository mounts.

use super::*;

#[tokio::test]
async fn tags_list_and_catalog_are_sorted_and_paginated() {
    let reg = Registry::new();
    for tag in ["v2", "latest", "v1"] {
        reg.push_image("web", tag, b"web").await;
    }
    reg.push_image("api", "v1", b"api").await;
    reg.push_image("team/app", "v1", b"app").await;

    let r = reg.get("/v2/web/tags/list").await;
    assert_eq!(
        r.json(),
        json!({"name": "web", "tags": ["latest", "v1", "v2"]})
    );
    let r = reg.get("/v2/web/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], json!(["latest", "v1"]));
    assert_eq!(
        r.header("link"),
        "</v2/web/tags/list?n=2&last=v1>; rel=\"next\""
    );
    let r = reg.get("/v2/web/tags/list?n=2&last=v1").await;
    assert_eq!(r.json()["tags"], json!(["v2"]));
    assert!(r.headers.get("link").is_none());

    let r = reg.get("/v2/_catalog").await;
    assert_eq!(
        r.json(),
        json!({"repositories": ["api", "team/app", "web"]})
    );
    let r = reg.get("/v2/_catalog?n=1&last=api").await;
    assert_eq!(r.json(), json!({"repositories": ["team/app"]}));

    let r = reg.get("/v2/nothing/tags/list").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    let r = reg.get("/v2/_catalog?n=many").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_repository_with_only_blobs_is_not_in_the_catalog() {
    let reg = Registry::new();
    reg.push_blob("blobs-only", b"x").await;
    assert_eq!(
        reg.get("/v2/_catalog").await.json(),
        json!({"repositories": []})
    );
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_manifest_by_digest() {
    let reg = Registry::new();
    let (manifest, digest) = reg.push_image("app", "v1", b"wasm").await;
    let r = reg
        .send(Method::DELETE, "/v2/app/manifests/v1", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = reg.get("/v2/app/manifests/v1").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = reg.get(&format!("/v2/app/manifests/{digest}")).await;
    assert_eq!(&r.body[..], &manifest[..]);
    let r = reg
        .send(Method::DELETE, "/v2/app/manifests/v1", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_manifest_by_digest_removes_its_tags() {
    let reg = Registry::new();
    let (_, digest) = reg.push_image("app", "v1", b"wasm").await;
    reg.push_image("app", "stable", b"wasm").await;
    let (_, other) = reg.push_image("app", "v2", b"other").await;
    let r = reg
        .send(
            Method::DELETE,
            &format!("/v2/app/manifests/{digest}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        reg.get(&format!("/v2/app/manifests/{digest}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.get("/v2/app/tags/list").await.json()["tags"],
        json!(["v2"])
    );
    assert_eq!(
        reg.get(&format!("/v2/app/manifests/{other}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn nested_names_are_served() {
    let reg = Registry::new();
    let (manifest, _) = reg.push_image("team/app/web", "v1.0_rc-1", b"wasm").await;
    let r = reg.get("/v2/team/app/web/manifests/v1.0_rc-1").await;
    assert_eq!(&r.body[..], &manifest[..]);
    let r = reg.get("/v2/team/app/web/tags/list").await;
    assert_eq!(
        r.json(),
        json!({"name": "team/app/web", "tags": ["v1.0_rc-1"]})
    );
    // The parent is not a repository of its own.
    assert_eq!(
        reg.get("/v2/team/app/tags/list").await.code(),
        "NAME_UNKNOWN"
    );
}

#[tokio::test]
async fn invalid_names_tags_and_digests_are_rejected() {
    let reg = Registry::new();
    let cases = [
        ("/v2/App/manifests/v1", "NAME_INVALID"),
        ("/v2/a..b/manifests/v1", "NAME_INVALID"),
        ("/v2/-a/tags/list", "NAME_INVALID"),
        ("/v2/a/../b/manifests/v1", "NAME_INVALID"),
        ("/v2/app/manifests/.hidden", "TAG_INVALID"),
        ("/v2/app/manifests/sha512:abcd", "DIGEST_INVALID"),
        ("/v2/app/blobs/sha256:ABC", "DIGEST_INVALID"),
        ("/v2/app/blobs/uploads/?digest=md5:1", "DIGEST_INVALID"),
    ];
    for (uri, code) in cases {
        let method = if uri.contains("uploads") {
            Method::POST
        } else {
            Method::GET
        };
        let r = reg.send(method, uri, &[], b"").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn unknown_methods_and_paths_are_unsupported() {
    let reg = Registry::new();
    let r = reg
        .send(Method::POST, "/v2/app/manifests/v1", &[], b"")
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
    let r = reg.get("/v2/app/referrers").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "UNSUPPORTED")
    );
}

#[tokio::test]
async fn a_body_over_the_blob_limit_is_413_and_the_upload_is_removed() {
    let reg = Registry::with(Options {
        max_image_blob: 8,
        ..Options::default()
    });
    let r = reg
        .send(Method::POST, "/v2/app/blobs/uploads/", &[], b"")
        .await;
    let location = r.header("location").to_string();
    reg.send(Method::PATCH, &location, &[], b"12345").await;
    let r = reg.send(Method::PATCH, &location, &[], b"6789").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    assert_eq!(reg.get(&location).await.code(), "BLOB_UPLOAD_UNKNOWN");

    // A declared length over the limit is refused before the body is read.
    let digest = Digest::of(b"123456789");
    let uri = format!("/v2/app/blobs/uploads/?digest={digest}");
    let r = reg
        .send(Method::POST, &uri, &[("content-length", "9")], b"123456789")
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reg.get(&format!("/v2/app/blobs/{digest}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_chunk_not_starting_at_the_upload_end_is_416() {
    let reg = Registry::new();
    let r = reg
        .send(Method::POST, "/v2/app/blobs/uploads/", &[], b"")
        .await;
    let location = r.header("location").to_string();
    reg.send(
        Method::PATCH,
        &location,
        &[("content-range", "0-2")],
        b"abc",
    )
    .await;
    let r = reg
        .send(
            Method::PATCH,
            &location,
            &[("content-range", "0-2")],
            b"abc",
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
    );
    assert_eq!(r.json()["errors"][0]["detail"]["size"], 3);
    let r = reg
        .send(
            Method::PATCH,
            &location,
            &[("content-range", "bytes=x")],
            b"d",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = reg
        .send(Method::PATCH, &location, &[("content-range", "3-3")], b"d")
        .await;
    assert_eq!(r.header("range"), "0-3");
}

#[tokio::test]
async fn a_cancelled_upload_is_gone() {
    let reg = Registry::new();
    let r = reg
        .send(Method::POST, "/v2/app/blobs/uploads", &[], b"")
        .await;
    let location = r.header("location").to_string();
    let r = reg.send(Method::DELETE, &location, &[], b"").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = reg.send(Method::PATCH, &location, &[], b"x").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    let r = reg.get("/v2/app/blobs/uploads/not-a-uuid").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn an_upload_belongs_to_its_repository() {
    let reg = Registry::new();
    let r = reg
        .send(Method::POST, "/v2/a/blobs/uploads/", &[], b"")
        .await;
    let uuid = r.header("docker-upload-uuid").to_string();
    let r = reg.get(&format!("/v2/b/blobs/uploads/{uuid}")).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn a_blob_of_one_repository_is_served_under_another_only_once_mounted() {
    let reg = Registry::new();
    let digest = reg.push_blob("a", b"shared layer").await;
    let r = reg.get(&format!("/v2/b/blobs/{digest}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    // Nor may b's manifest reference it.
    let config = reg.push_blob("b", b"{}").await;
    let r = reg
        .send(
            Method::PUT,
            "/v2/b/manifests/v1",
            &[],
            &manifest_bytes(&config, &digest),
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");

    // Mounting from a repository that lacks it starts an upload instead.
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}&from=c"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}&from=a"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/b/blobs/{digest}"));
    let r = reg.get(&format!("/v2/b/blobs/{digest}")).await;
    assert_eq!(&r.body[..], b"shared layer");

    // Unlinking from b leaves a's copy.
    let r = reg
        .send(Method::DELETE, &format!("/v2/b/blobs/{digest}"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        reg.get(&format!("/v2/b/blobs/{digest}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.get(&format!("/v2/a/blobs/{digest}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_store_survives_reopening_on_the_same_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        image_dir: Some(dir.path().join("images")),
        ..Options::default()
    };
    let (manifest, digest) = {
        let reg = Registry::with(options.clone());
        reg.push_image("team/app", "v1", b"durable").await
    };
    let store = crate::images::ImageStore::open(dir.path().join("images"), 1024)
        .await
        .expect("reopen");
    let state = ApiState::with_images(
        Arc::new(MemoryStore::new()),
        options,
        CancellationToken::new(),
        store,
    );
    let reg = Registry {
        app: apiserver::router(state.clone()),
        _state: state,
    };
    let r = reg.get("/v2/team/app/manifests/v1").await;
    assert_eq!(&r.body[..], &manifest[..]);
    assert_eq!(r.header("docker-content-digest"), digest);
    let layer = Digest::of(b"durable");
    assert_eq!(
        &reg.get(&format!("/v2/team/app/blobs/{layer}")).await.body[..],
        b"durable"
    );
    assert_eq!(
        reg.get("/v2/_catalog").await.json(),
        json!({"repositories": ["team/app"]})
    );
}

#[tokio::test]
async fn a_temporary_store_is_removed_with_the_state() {
    let reg = Registry::new();
    reg.push_blob("app", b"x").await;
    let root = reg._state.images.root().to_path_buf();
    assert!(root.exists());
    drop(reg);
    assert!(!root.exists());
}

#[test]
fn endpoints_are_parsed_from_the_end_of_the_path() {
    assert_eq!(Endpoint::parse("/v2"), Some(Endpoint::Base));
    assert_eq!(Endpoint::parse("/v2/"), Some(Endpoint::Base));
    assert_eq!(Endpoint::parse("/v2/_catalog"), Some(Endpoint::Catalog));
    assert_eq!(
        Endpoint::parse("/v2/a/b/tags/list"),
        Some(Endpoint::Tags("a/b"))
    );
    assert_eq!(
        Endpoint::parse("/v2/a/manifests/b/manifests/v1"),
        Some(Endpoint::Manifest("a/manifests/b", "v1"))
    );
    assert_eq!(
        Endpoint::parse("/v2/a/blobs/sha256:x"),
        Some(Endpoint::Blob("a", "sha256:x"))
    );
    assert_eq!(
        Endpoint::parse("/v2/a/blobs/uploads/"),
        Some(Endpoint::Uploads("a"))
    );
    assert_eq!(
        Endpoint::parse("/v2/a/blobs/uploads"),
        Some(Endpoint::Uploads("a"))
    );
    assert_eq!(
        Endpoint::parse("/v2/a/blobs/uploads/u"),
        Some(Endpoint::Upload("a", "u"))
    );
    assert_eq!(
        Endpoint::parse("/v2/a/blobs/blobs/uploads/"),
        Some(Endpoint::Uploads("a/blobs"))
    );
    assert_eq!(Endpoint::parse("/v2/a"), None);
    assert_eq!(Endpoint::parse("/v2x"), None);
}

#[test]
fn names_follow_the_distribution_grammar() {
    for ok in [
        "a", "a0", "team/app", "a.b", "a_b", "a__b", "a---b", "x/y/z",
    ] {
        assert!(RepoName::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "A",
        "a/",
        "/a",
        "a//b",
        "a.",
        "_a",
        "a___b",
        "a._b",
        "a b",
        "..",
        &"a".repeat(256),
    ] {
        assert!(RepoName::parse(bad).is_err(), "{bad}");
    }
    for ok in ["v1", "_x", "1.2.3-rc_1", &"t".repeat(128)] {
        assert!(Tag::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", ".v", "-v", "a/b", "a:b", &"t".repeat(129)] {
        assert!(Tag::parse(bad).is_err(), "{bad}");
    }
    assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
    let digest = Digest::of(b"").to_string();
    assert_eq!(
        digest,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(matches!(
        Reference::parse(&digest),
        Ok(Reference::Digest(_))
    ));
    assert!(Digest::parse(&digest.to_uppercase()).is_err());
}
