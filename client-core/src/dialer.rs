//! Keeps one WebSocket connection to the server: dial, `join`, wait for `peer`,
//! pump frames, and on any failure wait with exponential backoff and jitter
//! before dialling again.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use konsens_protocol::{ConnectionId, Message, PeerId, PeerMetadata};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::repo::{Command, ConnectionStatus};

pub(crate) struct DialerConfig {
    pub url: String,
    pub peer_id: PeerId,
    pub max_frame_bytes: usize,
    pub commands: mpsc::WeakUnboundedSender<Command>,
    pub status: watch::Sender<ConnectionStatus>,
    pub stop: CancellationToken,
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) async fn run(config: DialerConfig) {
    let mut backoff = INITIAL_BACKOFF;
    let mut next_conn = 1u64;
    loop {
        if config.stop.is_cancelled() {
            return;
        }
        let _ = config.status.send(ConnectionStatus::Connecting);
        let conn = ConnectionId(next_conn);
        next_conn += 1;
        let outcome = tokio::select! {
            outcome = session(&config, conn, &mut backoff) => outcome,
            () = config.stop.cancelled() => return,
        };
        let _ = config.status.send(ConnectionStatus::Offline);
        if let Some(commands) = config.commands.upgrade() {
            let _ = commands.send(Command::Disconnected(conn));
        } else {
            return;
        }
        if let Err(reason) = outcome {
            tracing::debug!(url = %config.url, %reason, "connection ended");
        }
        // Jitter keeps a room full of clients from reconnecting in lockstep.
        let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = config.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life. Resets `backoff` once the handshake succeeded.
async fn session(config: &DialerConfig, conn: ConnectionId, backoff: &mut Duration) -> Result<(), String> {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(&config.url, Some(ws_config), true)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = socket.split();
    let join = Message::Join {
        sender_id: config.peer_id.clone(),
        peer_metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: false }),
        supported_protocol_versions: Some(vec![konsens_protocol::PROTOCOL_VERSION.to_owned()]),
    };
    sink.send(WsMessage::Binary(join.encode().into())).await.map_err(|e| e.to_string())?;
    let server = loop {
        match stream.next().await {
            Some(Ok(WsMessage::Binary(bytes))) => match Message::decode(&bytes, config.max_frame_bytes) {
                Ok(Message::Peer { sender_id, .. }) => break sender_id,
                Ok(Message::Error { message, .. }) => return Err(format!("server refused join: {message}")),
                Ok(other) => return Err(format!("expected peer, got {}", other.type_name())),
                Err(e) => return Err(e.to_string()),
            },
            Some(Ok(WsMessage::Close(frame))) => return Err(format!("closed during handshake: {frame:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed during handshake".into()),
        }
    };
    *backoff = INITIAL_BACKOFF;
    tracing::info!(url = %config.url, %server, "connected");
    let (outbound_tx, mut outbound_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let commands = config.commands.upgrade().ok_or("repo closed")?;
    commands
        .send(Command::Connected { conn, server: server.clone(), outbound: outbound_tx })
        .map_err(|_| "repo closed")?;
    let _ = config.status.send(ConnectionStatus::Online { server });
    loop {
        tokio::select! {
            frame = outbound_rx.recv() => match frame {
                Some(frame) => sink.send(WsMessage::Binary(frame.into())).await.map_err(|e| e.to_string())?,
                None => return Err("repo dropped the connection".into()),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Binary(bytes))) => match Message::decode(&bytes, config.max_frame_bytes) {
                    Ok(message) => {
                        commands.send(Command::Incoming(conn, message)).map_err(|_| "repo closed")?;
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable frame from server"),
                },
                Some(Ok(WsMessage::Close(frame))) => return Err(format!("server closed: {frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            },
        }
    }
}
