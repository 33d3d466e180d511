//! Architecture invariants of `konsens-sync`: it is sans-IO (its normal
//! dependencies include no runtime, socket library or database), and it does
//! not know the domain (no `konsens-model`, no Markdown parser, no JSON).

fn normal_dependencies(manifest: &str) -> Vec<String> {
    manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn sync_has_no_io_and_no_domain_dependencies() {
    let normal = normal_dependencies(include_str!("../Cargo.toml"));
    assert!(!normal.is_empty(), "protocol/sync/Cargo.toml has a [dependencies] table");
    for forbidden in ["tokio", "sled", "tungstenite", "axum", "mio", "hyper", "async-std", "konsens-model", "pulldown-cmark", "serde_json", "autosurgeon"] {
        assert!(
            !normal.iter().any(|l| l.starts_with(forbidden)),
            "konsens-sync must stay sans-IO and domain-free, but depends on {forbidden}"
        );
    }
}

#[test]
fn store_depends_on_sync_only() {
    let store = normal_dependencies(include_str!("../../../store/Cargo.toml"));
    assert!(store.iter().any(|l| l.starts_with("konsens-sync")), "store uses konsens-sync's ids and writes");
    assert!(
        !store.iter().any(|l| l.starts_with("konsens-model")),
        "store must not build the domain (Markdown parser, schema): it depends on konsens-sync only"
    );
}
