//! The message rate limit slows a connection down before it closes one:
//! a burst over the rate is read later, not refused; only a sender that
//! stays over the rate for the close delay is closed.

use anyhow::{Context, Result, bail};
use konsens_sync::{DocMessage, DocumentId, Message, PeerId};
use konsens_tests::{Answer, RawPeer, ServerProcess};

const RATE: &str = "20";
const CLOSE_AFTER_SECS: &str = "3";

fn request(peer: &RawPeer, n: u8) -> Message {
    Message::Request(DocMessage {
        sender_id: peer.peer_id.clone(),
        target_id: peer.server_id.clone().unwrap_or_else(|| PeerId::from("server")),
        document_id: DocumentId::from_bytes([n; 16]),
        data: konsens_tests::empty_sync_message(),
    })
}

/// Send `count` requests as fast as the socket takes them, then read an
/// answer to each: `doc-unavailable`, since none of the documents exists.
async fn burst(peer: &mut RawPeer, count: u8) -> Result<Result<(), (u16, String)>> {
    for n in 0..count {
        let message = request(peer, n);
        peer.send(&message).await?;
    }
    let mut answered = 0;
    while answered < count {
        match peer.next().await? {
            Answer::Message(Message::DocUnavailable { .. }) => answered += 1,
            Answer::Message(Message::Error { .. }) => {}
            Answer::Message(other) => bail!("unexpected {other:?}"),
            Answer::Close { code, reason } => return Ok(Err((code, reason))),
            Answer::Ended => return Ok(Err((1006, String::new()))),
        }
    }
    Ok(Ok(()))
}

#[tokio::test]
async fn a_burst_is_slowed_down_not_closed_and_only_a_sustained_flood_is_closed() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(
        data.path(),
        "127.0.0.1:0",
        &["--messages-per-second", RATE, "--throttle-close-secs", CLOSE_AFTER_SECS],
    )?;
    let token = server.admin_token.clone().context("admin token")?;
    let url = format!("{}?token={token}", server.ws_url());

    // 60 messages at once: 40 pass as the burst allowance, 20 wait about a
    // second for their turn. Every one is answered; the connection stays.
    let mut typist = RawPeer::join(&url, "typist").await?;
    assert_eq!(burst(&mut typist, 60).await?, Ok(()), "a burst over the rate is read later, not refused");
    // Still open and served.
    assert_eq!(burst(&mut typist, 1).await?, Ok(()));

    // 250 at once would need over 10 s of slowing down: closed after 3 s.
    let mut flood = RawPeer::join(&url, "flood").await?;
    match burst(&mut flood, 250).await? {
        // The close frame, or a reset when the server closes a socket that
        // still holds the flood's unread messages.
        Err((code, reason)) => assert!(
            (code == 1008 && reason.contains("rate limit")) || code == 1006,
            "closed for the rate: {code} {reason}"
        ),
        Ok(()) => bail!("a sender over the rate for longer than the close delay is closed"),
    }
    assert!(
        server.wait_for_log("message rate limit exceeded for too long", std::time::Duration::from_secs(10)),
        "logged:\n{}",
        server.log()
    );
    Ok(())
}
