//! A samod 0.16 sync server for the benchmarks: the automerge-repo protocol at
//! `ws://ADDR/sync`, samod's file storage (the on-disk layout of
//! automerge-repo-storage-nodefs), and the stock server's sharing rule: accept
//! and sync any document a peer asks for, announce nothing on its own.
//!
//! `samod-server --listen 127.0.0.1:PORT --data DIR`; prints `listening ADDR`
//! on stdout once it accepts connections.

use std::path::PathBuf;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long)]
    data: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // The same runtime shape as konsens-server: a multi-threaded tokio runtime
    // (one worker per core it is allowed to use).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
    let repo = samod::Repo::build_tokio()
        .with_peer_id("samod-bench-server".into())
        .with_storage(samod::storage::TokioFilesystemStorage::new(&args.data))
        // Like automerge-repo-sync-server's `sharePolicy: async () => false`:
        // serve what is asked for, never announce documents to peers.
        .with_share_policy(samod::ShareConfig::read_write().with_announce(false))
        .load()
        .await;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    let acceptor = repo.make_acceptor(samod::Url::parse(&format!("ws://{addr}/sync"))?)?;
    let app = Router::new().route(
        "/sync",
        get(move |upgrade: WebSocketUpgrade| {
            let acceptor = acceptor.clone();
            async move {
                upgrade
                    .max_message_size(64 << 20)
                    .on_upgrade(move |socket| async move {
                        if let Err(e) = acceptor.accept_axum(socket, None) {
                            tracing::warn!(error = %e, "refused a connection");
                        }
                    })
            }
        }),
    );
    println!("listening {addr}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    repo.stop().await;
    Ok(())
}
