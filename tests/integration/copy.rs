//! The copy engine against real Azurite: server-side within one process, stream mode between
//! two processes, reruns, and a destination that dies in the middle.

use std::collections::HashMap;
use std::time::Duration;

use amsplay::storage::{copy_blobs, CopyMode, CopyOptions, RetryPolicy, Storage, TransferOptions};
use futures::StreamExt;

use crate::harness::{data, md5_hex, Env};

/// Uploads `(name, bytes)` pairs concurrently; returns name → MD5 hex.
async fn fill(
    s: &Storage,
    container: &str,
    blobs: Vec<(String, Vec<u8>)>,
) -> HashMap<String, String> {
    s.create_container(container).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let expected: HashMap<String, String> =
        blobs.iter().map(|(n, d)| (n.clone(), md5_hex(d))).collect();
    let opts = TransferOptions::default();
    futures::stream::iter(blobs)
        .map(|(name, bytes)| {
            let (s, dir, opts) = (s.clone(), dir.path().to_path_buf(), opts.clone());
            async move {
                let path = dir.join(name.replace('/', "_"));
                std::fs::write(&path, &bytes).unwrap();
                s.upload_file(container, &path, &name, &opts, None)
                    .await
                    .unwrap();
                std::fs::remove_file(&path).unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    expected
}

/// Every expected blob is at the destination with that MD5, checked by downloading its bytes.
async fn assert_content(s: &Storage, container: &str, expected: &HashMap<String, String>) {
    let listed = s.blobs(container).await.unwrap();
    assert_eq!(listed.len(), expected.len(), "blob count in {container}");
    let dir = tempfile::tempdir().unwrap();
    for b in listed {
        let want = &expected[&b.name];
        assert_eq!(&b.md5_hex(), want, "stored Content-MD5 of {}", b.name);
        let path = dir.path().join("x");
        s.download_file(container, &b.name, &path, &TransferOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(
            &md5_hex(&std::fs::read(&path).unwrap()),
            want,
            "bytes of {}",
            b.name
        );
    }
}

fn quiet(mode: CopyMode) -> CopyOptions {
    CopyOptions {
        mode,
        progress: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_copy_of_hundreds_of_blobs_is_verified_and_a_rerun_copies_nothing() {
    let env = Env::start(&["dca", "dcb"]).await;
    let (a, b) = (env.storage("dca"), env.storage("dcb"));
    let mut blobs: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("seg/{i:04}.m4s"),
                data(i, 1 + (i as usize * 977) % 20000),
            )
        })
        .collect();
    blobs.push(("empty.txt".into(), Vec::new()));
    blobs.push(("video_1280x720_3400.mp4".into(), data(999, 9 * 1024 * 1024)));
    let expected = fill(&a, "asset-src", blobs).await;

    let r = copy_blobs(&a, "asset-src", &b, "asset-dst", &quiet(CopyMode::Auto))
        .await
        .unwrap();
    assert_eq!((r.copied, r.skipped, r.failed), (302, 0, 0), "{r:?}");
    assert_eq!(r.mode, "server");
    let listed: HashMap<String, String> = b
        .blobs("asset-dst")
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.name.clone(), x.md5_hex()))
        .collect();
    assert_eq!(listed, expected, "every blob with its MD5");

    let again = copy_blobs(&a, "asset-src", &b, "asset-dst", &quiet(CopyMode::Auto))
        .await
        .unwrap();
    assert_eq!(
        (again.copied, again.skipped, again.failed),
        (0, 302, 0),
        "{again:?}"
    );

    // A blob changed at the source is copied again; the others are skipped.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), b"changed").unwrap();
    a.upload_file(
        "asset-src",
        &dir.path().join("x"),
        "seg/0007.m4s",
        &TransferOptions::default(),
        None,
    )
    .await
    .unwrap();
    let third = copy_blobs(&a, "asset-src", &b, "asset-dst", &quiet(CopyMode::Server))
        .await
        .unwrap();
    assert_eq!((third.copied, third.skipped), (1, 301), "{third:?}");
    assert_eq!(
        b.blob("asset-dst", "seg/0007.m4s")
            .await
            .unwrap()
            .unwrap()
            .md5_hex(),
        md5_hex(b"changed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_two_processes_auto_mode_falls_back_to_streaming() {
    let (ea, eb) = tokio::join!(Env::start(&["dca"]), Env::start(&["dcb"]));
    let (a, b) = (ea.storage("dca"), eb.storage("dcb"));
    let mut blobs: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("f{i:02}.bin"),
                data(i + 7, 50_000 + i as usize * 1000),
            )
        })
        .collect();
    blobs.push(("large.mp4".into(), data(3, 21 * 1024 * 1024 + 17)));
    blobs.push(("zero.bin".into(), Vec::new()));
    let expected = fill(&a, "src", blobs).await;

    let mut opts = quiet(CopyMode::Auto);
    // Small blobs are piped GET -> Put Blob; the large one goes block by block.
    opts.transfer = TransferOptions::new(4 << 20, 4, 32 << 20);
    opts.transfer.pipe_max = 1 << 20;
    let r = copy_blobs(&a, "src", &b, "dst", &opts).await.unwrap();
    assert_eq!((r.copied, r.failed), (42, 0), "{r:?}");
    assert_eq!(
        r.mode, "server+stream",
        "the server-side copy is refused across processes"
    );
    assert_content(&b, "dst", &expected).await;

    let again = copy_blobs(&a, "src", &b, "dst", &quiet(CopyMode::Stream))
        .await
        .unwrap();
    assert_eq!((again.copied, again.skipped), (0, 42), "{again:?}");
}

/// Kills the destination Azurite once the first blob is committed, restarts it on the same
/// data, and checks that a rerun ends with every blob present and verified. `pipe_max` picks
/// the path: piped Put Blobs, or blocks.
async fn kill_destination_mid_stream(pipe_max: u64) {
    let src_env = Env::start(&["dca"]).await;
    let mut dst_env = Env::start_persistent(&["dcb"]).await;
    let a = src_env.storage("dca");
    let quick = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
    };
    let b = dst_env.storage("dcb").with_retry(quick);
    let blobs: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("rung{i}.mp4"),
                data(100 + i, 12 * 1024 * 1024 + i as usize),
            )
        })
        .collect();
    let expected = fill(&a, "src", blobs).await;

    let mut opts = quiet(CopyMode::Stream);
    opts.concurrency = 2;
    opts.attempts = 1;
    opts.transfer = TransferOptions::new(1 << 20, 2, 8 << 20);
    opts.transfer.pipe_max = pipe_max;
    let copy = {
        let (a, b, opts) = (a.clone(), b.clone(), opts.clone());
        tokio::spawn(async move { copy_blobs(&a, "src", &b, "dst", &opts).await })
    };
    // Kill the destination once the first blob is committed and others are half-way.
    let raw = dst_env.storage("dcb");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(list) = raw.blobs("dst").await {
            if !list.is_empty() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the copy never committed a blob"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dst_env.azurite.kill();
    let first = copy.await.unwrap();
    match &first {
        Ok(r) => assert!(
            r.failed > 0 && r.copied < 6,
            "the kill must interrupt the copy: {r:?}"
        ),
        Err(e) => eprintln!("first run ended with {e}"),
    }

    dst_env.azurite.restart().await.unwrap();
    let b = dst_env.storage("dcb");
    // Whatever is at the destination now is whole: a half-copied blob never appears.
    for blob in b.blobs("dst").await.unwrap_or_default() {
        assert_eq!(Some(&blob.md5_hex()), expected.get(&blob.name), "{blob:?}");
    }
    let mut again = quiet(CopyMode::Stream);
    again.transfer.pipe_max = pipe_max;
    let r = copy_blobs(&a, "src", &b, "dst", &again).await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");
    assert_eq!(r.copied + r.skipped, 6, "{r:?}");
    assert!(
        r.copied >= 1,
        "the rerun finished what the kill interrupted: {r:?}"
    );
    assert_content(&b, "dst", &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_killed_mid_block_stream_then_restarted_and_rerun_ends_complete() {
    kill_destination_mid_stream(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_killed_mid_piped_stream_then_restarted_and_rerun_ends_complete() {
    kill_destination_mid_stream(u64::MAX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_copies_are_polled_busy_answers_retried_and_failed_copies_copied_again() {
    use crate::harness::fault::{self, Faults};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let env = Env::start(&["dca", "dcb"]).await;
    let faults = Arc::new(Faults::with_pending_polls(3));
    faults.busy_copies.store(2, Ordering::SeqCst);
    faults.failed_copies.store(1, Ordering::SeqCst);
    let port = fault::start(env.azurite.port, faults.clone()).await;
    let through = |name: &str| {
        let mut acct = env.account(name);
        acct.endpoint = url::Url::parse(&format!("http://127.0.0.1:{port}/{name}")).unwrap();
        Storage::open(&acct).unwrap()
    };
    let (a, b) = (through("dca"), through("dcb"));
    let blobs: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("b{i}"), data(i, 3000))).collect();
    let expected = fill(&a, "src", blobs).await;

    let mut opts = quiet(CopyMode::Server);
    opts.poll_first = Duration::from_millis(5);
    opts.poll_max = Duration::from_millis(20);
    let r = copy_blobs(&a, "src", &b, "dst", &opts).await.unwrap();
    assert_eq!(
        (r.copied, r.failed, r.mode.as_str()),
        (5, 0, "server"),
        "{r:?}"
    );
    assert_eq!(
        faults.served_busy.load(Ordering::SeqCst),
        2,
        "503s were answered and retried"
    );
    assert_eq!(
        faults.served_failed.load(Ordering::SeqCst),
        1,
        "one copy ended failed"
    );
    assert_eq!(
        faults.served_pending.load(Ordering::SeqCst),
        3 * 6,
        "every copy (5, plus the one copied again) was polled through its pending answers"
    );
    assert_content(&b, "dst", &expected).await;
}
