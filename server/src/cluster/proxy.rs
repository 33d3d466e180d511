//! The relay of one document owned by another node: takes the commands the
//! connections here send to the document (exactly what an owner would get)
//! and forwards them over the link to the owner node, which decides access
//! and answers the clients directly through the link. It ends when the
//! owner is gone or gave the document up, handing the connections that
//! talked to the document back, so that they resync with whoever owns it
//! next; or when nobody here uses the document any more.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use konsens_sync::{ConnectionId, DocumentId, Message};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::envelope::Envelope;
use crate::cluster::link::{Link, LinkEvent};
use crate::document::DocCommand;
use crate::handle::{CloseReason, ConnectionHandle};

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum RelayExit {
    /// The owner died or gave the document up: place it again, and resync
    /// these connections with whoever owns it now.
    Reroute { commands: mpsc::Receiver<DocCommand>, conns: Vec<Arc<ConnectionHandle>> },
    /// Nobody here talks to the document any more.
    Idle(mpsc::Receiver<DocCommand>),
    /// The server is shutting down, or nobody can send to it any more.
    Stopped,
}

#[derive(Debug)]
pub(crate) struct Relay {
    pub document: DocumentId,
    pub link: Arc<Link>,
    pub commands: mpsc::Receiver<DocCommand>,
    /// Connections here that talk to the document through the link.
    pub conns: HashMap<ConnectionId, Arc<ConnectionHandle>>,
    /// The link's and the lease watcher's news about the owner (see
    /// [`Link::attach`] and `Cluster::watch`).
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    pub idle_after: Duration,
    pub shutdown: CancellationToken,
}

impl Relay {
    /// Relay until the owner goes or the document idles. `resync`: connections
    /// that synced the document with an earlier owner.
    pub async fn run(mut self, resync: Vec<Arc<ConnectionHandle>>) -> RelayExit {
        for conn in resync {
            if self.open(&conn).await {
                self.link.send(&Envelope::Resync { conn: conn.id, document: self.document }).await;
            }
        }
        let link = self.link.clone();
        let shutdown = self.shutdown.clone();
        loop {
            let idle = self.conns.is_empty();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if !self.forward(command).await {
                            return self.reroute().await;
                        }
                    }
                    None => return self.stop(),
                },
                Some(LinkEvent::Moved) = self.events.recv() => return self.reroute().await,
                () = link.closed.cancelled() => return self.reroute().await,
                () = tokio::time::sleep(self.idle_after), if idle => {
                    self.link.detach(self.document);
                    return RelayExit::Idle(self.commands);
                }
                () = shutdown.cancelled() => return self.stop(),
            }
        }
    }

    fn stop(self) -> RelayExit {
        self.link.detach(self.document);
        RelayExit::Stopped
    }

    /// False: the link is gone.
    async fn forward(&mut self, command: DocCommand) -> bool {
        let document = self.document;
        tracing::trace!(%document, ?command, "relaying to the owner");
        match command {
            DocCommand::Sync { conn, message, request } => {
                if conn.relayed {
                    // Relayed to us by a node that thinks we own it: it asks
                    // the database again (never two hops, never a loop).
                    conn.close(CloseReason::Moved);
                    return true;
                }
                self.open(&conn).await && self.link.send(&Envelope::Sync { conn: conn.id, document, request, data: message.encode() }).await
            }
            DocCommand::Ephemeral { conn, message } => {
                if conn.relayed {
                    return true;
                }
                let frame = Message::Ephemeral(message).encode();
                self.open(&conn).await && self.link.send(&Envelope::Ephemeral { conn: conn.id, document, frame }).await
            }
            DocCommand::Resync { conn } => {
                if conn.relayed {
                    conn.close(CloseReason::Moved);
                    return true;
                }
                self.open(&conn).await && self.link.send(&Envelope::Resync { conn: conn.id, document }).await
            }
            DocCommand::Disconnected { conn } => {
                if self.conns.remove(&conn).is_some() {
                    self.link.unroute(conn, document);
                    return self.link.send(&Envelope::Leave { conn, document }).await;
                }
                true
            }
            // Only owners hold leases.
            DocCommand::LeaseLost => true,
        }
    }

    /// Introduce a connection to the owner on first sight. False: the link is gone.
    async fn open(&mut self, conn: &Arc<ConnectionHandle>) -> bool {
        if self.conns.contains_key(&conn.id) {
            return true;
        }
        self.link.route(conn, self.document);
        self.conns.insert(conn.id, conn.clone());
        self.link
            .send(&Envelope::Open {
                conn: conn.id,
                document: self.document,
                peer: conn.peer_id.clone(),
                storage: conn.storage.clone(),
                token_id: conn.principal.token_id.clone(),
            })
            .await
    }

    async fn reroute(mut self) -> RelayExit {
        self.link.detach(self.document);
        for conn in self.conns.keys() {
            self.link.unroute(*conn, self.document);
        }
        let conns: Vec<_> = self.conns.drain().map(|(_, conn)| conn).collect();
        tracing::info!(document = %self.document, owner = %self.link.address, connections = conns.len(), "the owner is gone or gave the document up; placing it again");
        // The old owner, if alive, forgets these connections, before any
        // new `Open` of theirs on this link (frames on a link keep their order).
        for conn in &conns {
            if !self.link.send(&Envelope::Leave { conn: conn.id, document: self.document }).await {
                break;
            }
        }
        RelayExit::Reroute { commands: self.commands, conns }
    }
}
