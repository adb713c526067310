//! What one client connection may cost a server, on the emulator and the front door alike:
//! requests whose headers never finish are closed after the header-read timeout, and at the
//! connection cap a normal request waits for a slot instead of failing.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{FrontDoor, Media};

const LIMITS: [&str; 4] = ["--header-timeout-ms", "500", "--max-connections", "40"];

/// Reads until the server closes the connection; false if it stays open past `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A complete GET of `path`; the status.
async fn get(port: u16, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let head = String::from_utf8_lossy(&raw);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Half-sent requests (a slowloris) fill the server past its connection cap; each is closed
/// after the header-read timeout, and a real request meanwhile waits, then is answered.
async fn slow_clients_cannot_hold(port: u16, path: &str) {
    let mut held = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    let began = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), get(port, path))
        .await
        .expect("a real request is answered once the slow ones are closed");
    assert_eq!(status, 200);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "answered only after {:?}",
        began.elapsed()
    );
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "a half-sent request stayed open"
        );
    }
}

#[tokio::test]
async fn the_emulator_closes_half_sent_requests_and_serves_the_rest() {
    let media = Media::start(&LIMITS).await;
    slow_clients_cannot_hold(media.port, "/health").await;
}

#[tokio::test]
async fn the_front_door_closes_half_sent_requests_and_serves_the_rest() {
    let front = FrontDoor::start(&["http://127.0.0.1:9"], &LIMITS);
    slow_clients_cannot_hold(front.port, "/status").await;
}
