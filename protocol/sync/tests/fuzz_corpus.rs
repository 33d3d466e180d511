//! Replays the committed fuzz corpus (seeds and every crasher found so far)
//! through the same check the fuzz target runs, on every `cargo test`.

use std::path::Path;

#[test]
fn committed_corpus_decodes_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_message");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        konsens_sync::fuzzing::check_decode(&data);
        count += 1;
    }
    assert!(count >= 20, "corpus has only {count} inputs");
}
