//! Architecture invariant: `konsens-model` is pure. Its normal dependencies
//! must not include a runtime, a socket library or a database.

#[test]
fn model_has_no_io_dependencies() {
    let manifest = include_str!("../Cargo.toml");
    let normal = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("protocol/model/Cargo.toml has a [dependencies] table");
    for forbidden in ["tokio", "sled", "tungstenite", "axum", "mio", "hyper", "async-std", "clap"] {
        assert!(
            !normal.lines().any(|l| l.trim_start().starts_with(forbidden)),
            "konsens-model must stay free of IO, but depends on {forbidden}"
        );
    }
}
