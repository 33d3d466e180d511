//! The CLI's exit code 3, "the server is unreachable" (README: exit codes),
//! on every path that talks to a server: joining (nothing listening, a
//! gateway in front of a dead server), the JSON API once joined, and sync.
//! Bad input stays 1.

use std::io::{Read, Write};
use std::net::TcpListener;

use anyhow::Result;
use konsens_tests::ServerProcess;
use konsens_tests::cli::{fails, ok};

/// A loopback port nothing listens on: bound once, then released.
fn closed_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A reverse proxy whose server is down: it answers every request with
/// `status` (no JSON body), for `requests` requests.
fn dead_gateway(status: &'static str, requests: usize) -> Result<(String, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0_u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><body>Bad gateway</body></html>";
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    Ok((addr, thread))
}

#[test]
fn join_to_a_server_that_is_not_there_exits_3() -> Result<()> {
    let store = tempfile::tempdir()?;
    let port = closed_port()?;
    let err = fails(store.path(), &["join", &format!("http://127.0.0.1:{port}/join/sometoken")], 3)?;
    assert!(err.contains("cannot connect"), "{err}");
    // Not a link at all is bad input, not a network problem.
    let err = fails(store.path(), &["join", "not-a-link"], 1)?;
    assert!(err.contains("not an invitation link"), "{err}");
    Ok(())
}

#[test]
fn join_through_a_gateway_whose_server_is_down_exits_3() -> Result<()> {
    let store = tempfile::tempdir()?;
    for status in ["502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout"] {
        let (addr, gateway) = dead_gateway(status, 1)?;
        fails(store.path(), &["join", &format!("http://{addr}/join/sometoken")], 3)?;
        let _ = gateway.join();
    }
    // A server that answers, and refuses the token, is reached: exit 1.
    let (addr, gateway) = dead_gateway("401 Unauthorized", 1)?;
    fails(store.path(), &["join", &format!("http://{addr}/join/sometoken")], 1)?;
    let _ = gateway.join();
    Ok(())
}

#[test]
fn a_joined_store_whose_server_stopped_exits_3() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let token = server.admin_token.clone().ok_or_else(|| anyhow::anyhow!("no admin token printed"))?;
    let link = server.http_url(&format!("/join/{token}"));
    let store = tempfile::tempdir()?;
    ok(store.path(), &["join", &link])?;
    ok(store.path(), &["identity"])?;
    let process = ok(store.path(), &["process", "create", "--title", "Faire Anwerbung"])?;
    drop(server);

    // The API (members), the sync socket (sync), and joining again.
    fails(store.path(), &["members", &process], 3)?;
    fails(store.path(), &["sync", "--connect-timeout", "2"], 3)?;
    fails(store.path(), &["join", &link], 3)?;
    // Working offline still works.
    ok(store.path(), &["process", "show", &process])?;
    Ok(())
}
