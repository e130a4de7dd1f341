//! The archive's object store against a real S3 server: everything the archiver and restore
//! rely on works over the S3 protocol, not only on a directory.
//!
//! Method: each test starts its own `s3s-fs` on 127.0.0.1 (tests/common/s3.rs) and drives
//! `dqlite_vfs::archive::store::Store` at it: whole objects, a 20 MiB file (a multipart upload
//! of three parts), listings, deletes, size bounds and NotFound; a wrong secret, whose error
//! must be clear and must not contain it; and a server stopped mid-way, where a call must fail
//! within its deadline and work again after the restart.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::s3::S3Server;
use dqlite_vfs::archive::store::{
    ArchiveTarget, ObjectEntry, Store, StoreError, MULTIPART_PART_BYTES, REQUEST_DEADLINE,
};

fn open(server: &S3Server, prefix: &str) -> Store {
    let target = ArchiveTarget::parse(&server.url(prefix), Some(&server.options_json()))
        .expect("the test server's target parses");
    Store::open(&target).expect("open the S3 store")
}

fn names(entries: &[ObjectEntry]) -> Vec<(&str, u64)> {
    entries.iter().map(|e| (e.name.as_str(), e.size)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_through_s3() {
    let server = S3Server::start();
    let store = open(&server, "cluster-a/db");

    store.put("seg/0002", Bytes::from_static(b"second")).await.unwrap();
    store.put("seg/0001", Bytes::from_static(b"first!!")).await.unwrap();
    store.put("manifest", Bytes::from_static(b"v1")).await.unwrap();
    store.put("manifest", Bytes::from_static(b"v2")).await.unwrap();
    assert_eq!(&store.get("manifest", 2).await.unwrap()[..], b"v2", "a put replaces");
    // The objects are really in the server's bucket, under the prefix.
    let on_disk = server.root().join(server.bucket()).join("cluster-a/db/seg/0001");
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"first!!", "{}", server.log());

    // 20 MiB: three parts of a multipart upload.
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("base");
    let content: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i * 7 % 253) as u8).collect();
    assert!(content.len() > 2 * MULTIPART_PART_BYTES);
    std::fs::write(&file, &content).unwrap();
    let uploaded = store.put_file("base/0001", &file).await.unwrap();
    assert_eq!(uploaded, content.len() as u64);
    let back = scratch.path().join("back");
    assert_eq!(store.get_to_file("base/0001", &back, uploaded).await.unwrap(), uploaded);
    assert!(std::fs::read(&back).unwrap() == content, "the multipart object reads back whole");

    let all = store.list("").await.unwrap();
    let expected = vec![("base/0001", uploaded), ("manifest", 2), ("seg/0001", 7), ("seg/0002", 6)];
    assert_eq!(names(&all), expected);
    assert_eq!(names(&store.list("seg").await.unwrap()), vec![("seg/0001", 7), ("seg/0002", 6)]);
    assert_eq!(store.list("none").await.unwrap(), vec![]);
    // Another prefix in the same bucket is another archive.
    assert_eq!(open(&server, "cluster-b").list("").await.unwrap(), vec![]);

    // Bounds are checked from the announced size, before any body is read.
    let err = store.get("seg/0001", 6).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { size: 7, bytes_max: 6, .. }), "{err}");
    let refused = scratch.path().join("refused");
    let err = store.get_to_file("base/0001", &refused, 1024).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(!refused.exists(), "a refused download leaves no file");

    store.delete("seg/0001").await.unwrap();
    store.delete("seg/0001").await.expect("deleting a missing object is not an error");
    let err = store.get("seg/0001", 100).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = store.get_to_file("nothing", &refused, 100).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(names(&store.list("seg").await.unwrap()), vec![("seg/0002", 6)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_clearly_without_showing_it() {
    let server = S3Server::start();
    let wrong_secret = "WRONG-secret-7f3e9a51b2";
    let options = server.options_json().replace(server.secret_key(), wrong_secret);
    assert!(options.contains(wrong_secret));
    let target = ArchiveTarget::parse(&server.url("db"), Some(&options)).unwrap();
    let store = Store::open(&target).unwrap();

    let err = store.put("seg/0001", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Store { op: "put", .. }), "{err:?}");
    // The whole chain, as a log line or a debug dump would show it.
    let mut shown = vec![err.to_string(), format!("{err:?}"), format!("{err:#?}")];
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(c) = cause {
        shown.push(c.to_string());
        cause = c.source();
    }
    for text in &shown {
        assert!(!text.contains(wrong_secret), "the secret shows in: {text}");
        assert!(!text.contains(server.secret_key()), "the real secret shows in: {text}");
    }
    let message = &shown[0];
    assert!(message.starts_with("archive put seg/0001: "), "{message}");
    assert!(message.contains("403") || message.contains("Signature"), "{message}");
    eprintln!("wrong secret gives: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_within_deadline_and_recovers() {
    let mut server = S3Server::start();
    let store = open(&server, "db");
    store.put("before", Bytes::from_static(b"1")).await.unwrap();

    server.stop();
    let started = Instant::now();
    let err = store.put("during", Bytes::from_static(b"2")).await.unwrap_err();
    let took = started.elapsed();
    assert!(took <= REQUEST_DEADLINE + Duration::from_secs(1), "took {took:?}: {err}");
    assert!(matches!(err, StoreError::Store { .. } | StoreError::Timeout { .. }), "{err:?}");
    assert!(!err.is_not_found(), "a store that is down is not a missing object: {err}");
    eprintln!("store down: failed after {took:?}: {err}");
    let started = Instant::now();
    let err = store.list("").await.unwrap_err();
    assert!(started.elapsed() <= REQUEST_DEADLINE + Duration::from_secs(1), "{err}");

    server.restart();
    store.put("after", Bytes::from_static(b"3")).await.unwrap();
    let listed = store.list("").await.unwrap();
    assert_eq!(names(&listed), vec![("after", 1), ("before", 1)]);
    assert_eq!(&store.get("before", 1).await.unwrap()[..], b"1");
}
