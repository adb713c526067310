//! Storage against real Azurite: round trips, listings, SAS, and errors that say what to do.

use amsplay::storage::{SasPerms, Storage, StorageError, TransferOptions};

use crate::harness::{data, md5_hex, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_download_round_trip_including_a_large_blob() {
    let env = Env::start(&["dca"]).await;
    let s = env.storage("dca");
    let dir = tempfile::tempdir().unwrap();
    assert!(s.create_container("media").await.unwrap());
    assert!(
        !s.create_container("media").await.unwrap(),
        "second create says it existed"
    );

    // 70 MiB: more than 64 MiB, many blocks, not a multiple of the block size.
    let big = data(1, 70 * 1024 * 1024 + 12345);
    let small = data(2, 1000);
    for (name, bytes) in [
        ("big.mp4", &big),
        ("small.ism", &small),
        ("empty.bin", &vec![]),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let opts = TransferOptions::default();
    for name in ["big.mp4", "small.ism", "empty.bin"] {
        let info = s
            .upload_file("media", &dir.path().join(name), name, &opts, None)
            .await
            .unwrap();
        assert_eq!(info.name, name);
    }

    let blobs = s.blobs("media").await.unwrap();
    let names: Vec<&str> = blobs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["big.mp4", "empty.bin", "small.ism"]);
    let by = |n: &str| blobs.iter().find(|b| b.name == n).unwrap().clone();
    assert_eq!(by("big.mp4").size, big.len() as u64);
    assert_eq!(
        by("big.mp4").md5_hex(),
        md5_hex(&big),
        "Content-MD5 set on block upload"
    );
    assert_eq!(by("big.mp4").content_type, "video/mp4");
    assert_eq!(by("small.ism").md5_hex(), md5_hex(&small));
    assert_eq!(by("small.ism").content_type, "application/xml");
    assert_eq!(by("empty.bin").size, 0);

    let out = dir.path().join("big.out");
    s.download_file("media", "big.mp4", &out, &opts, None)
        .await
        .unwrap();
    assert_eq!(md5_hex(&std::fs::read(&out).unwrap()), md5_hex(&big));
    let out0 = dir.path().join("empty.out");
    s.download_file("media", "empty.bin", &out0, &opts, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out0).unwrap().len(), 0);

    assert!(s.delete_blob("media", "small.ism").await.unwrap());
    assert!(!s.delete_blob("media", "small.ism").await.unwrap());
    assert_eq!(s.blobs("media").await.unwrap().len(), 2);
    assert!(s.containers().await.unwrap().contains(&"media".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_sas_lists_and_reads_and_a_read_sas_cannot_write() {
    let env = Env::start(&["dca"]).await;
    let s = env.storage("dca");
    s.create_container("sas-test").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"hello").unwrap();
    s.upload_file(
        "sas-test",
        &dir.path().join("f.txt"),
        "f.txt",
        &TransferOptions::default(),
        None,
    )
    .await
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let url = s
        .container_sas_url(
            "sas-test",
            "rl".parse().unwrap(),
            None,
            now + time::Duration::hours(1),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let list = http
        .get(format!("{url}&restype=container&comp=list"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert!(list.text().await.unwrap().contains("<Name>f.txt</Name>"));
    let mut blob_url = url.clone();
    blob_url.set_path(&format!("{}/f.txt", url.path()));
    let body = http.get(blob_url.clone()).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), "hello");
    let put = http
        .put(blob_url)
        .header("x-ms-blob-type", "BlockBlob")
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 403, "a read SAS must not write");

    let expired = s
        .container_sas_url(
            "sas-test",
            SasPerms {
                read: true,
                list: true,
                ..Default::default()
            },
            Some(now - time::Duration::hours(2)),
            now - time::Duration::hours(1),
        )
        .await
        .unwrap();
    let r = http
        .get(format!("{expired}&restype=container&comp=list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an expired SAS is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem() {
    let env = Env::start(&["dca"]).await;
    let s = env.storage("dca");

    let err = s.blobs("missing").await.unwrap_err();
    assert!(
        matches!(err, StorageError::ContainerNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("'missing'"), "{err}");

    let mut wrong = env.account("dca");
    wrong.key = amsplay::azurite::generate_key();
    let err = Storage::open(&wrong)
        .unwrap()
        .containers()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AuthenticationFailed { .. }),
        "{err:?}"
    );

    let mut bad = env.account("dca");
    bad.key = "not base64!".into();
    assert!(matches!(Storage::open(&bad), Err(StorageError::Invalid(_))));

    s.create_container("ccc").await.unwrap();
    let err = s
        .upload_file(
            "ccc",
            std::path::Path::new("/nonexistent/file.mp4"),
            "file.mp4",
            &TransferOptions::default(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LocalFile { .. }), "{err:?}");
    assert!(s.blobs("ccc").await.unwrap().is_empty(), "nothing written");

    let err = s.create_container("Bad_Name").await.unwrap_err();
    assert!(
        err.to_string().contains("not a valid container name"),
        "{err}"
    );

    // An account nobody listens on: unreachable, after bounded retries.
    let mut gone = env.account("dca");
    gone.endpoint = url::Url::parse("http://127.0.0.1:9/dca").unwrap();
    let quick = amsplay::storage::RetryPolicy {
        attempts: 2,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(20),
    };
    let err = Storage::open(&gone)
        .unwrap()
        .with_retry(quick)
        .containers()
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err:?}");
}
