//! Architecture invariant: `konsens-protocol` is sans-IO. Its normal
//! dependencies must not include a runtime, a socket library or a database.

#[test]
fn protocol_has_no_io_dependencies() {
    let manifest = include_str!("../Cargo.toml");
    let normal = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("protocol/Cargo.toml has a [dependencies] table");
    for forbidden in ["tokio", "sled", "tungstenite", "axum", "mio", "hyper", "async-std"] {
        assert!(
            !normal.lines().any(|l| l.trim_start().starts_with(forbidden)),
            "konsens-protocol must stay sans-IO, but depends on {forbidden}"
        );
    }
}
