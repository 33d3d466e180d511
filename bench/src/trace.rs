//! The editing traces in `data/editing-traces` (CC BY 4.0, Joseph Gentle's
//! collection), turned into Automerge documents and edit lists.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc};
use serde::Deserialize;

/// Where the traces live, relative to the repository root.
pub fn traces_dir() -> PathBuf {
    crate::repo_root().join("data/editing-traces")
}

fn read_gz(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .with_context(|| format!("gunzipping {}", path.display()))?;
    Ok(out)
}

/// `[pos, del_len, "inserted"]`; positions count Unicode code points, which is
/// also what Automerge's default text encoding counts.
#[derive(Debug, Clone, Deserialize)]
pub struct Patch(pub usize, pub usize, pub String);

#[derive(Debug, Deserialize)]
struct SequentialTxn {
    patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
struct Sequential {
    #[serde(rename = "endContent")]
    end_content: String,
    txns: Vec<SequentialTxn>,
}

#[derive(Debug, Deserialize)]
struct ConcurrentTxn {
    parents: Vec<usize>,
    agent: usize,
    patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
struct Concurrent {
    #[serde(rename = "endContent")]
    end_content: String,
    #[serde(rename = "numAgents")]
    num_agents: usize,
    txns: Vec<ConcurrentTxn>,
}

/// A sequential trace as single edits (one keystroke or deletion each).
#[derive(Debug)]
pub struct SequentialTrace {
    pub edits: Vec<Patch>,
    pub end_content: String,
}

pub fn load_sequential(name: &str) -> Result<SequentialTrace> {
    let bytes = read_gz(&traces_dir().join(name))?;
    let trace: Sequential = serde_json::from_slice(&bytes).with_context(|| format!("parsing {name}"))?;
    Ok(SequentialTrace {
        edits: trace.txns.into_iter().flat_map(|t| t.patches).collect(),
        end_content: trace.end_content,
    })
}

/// The key of the text object in every benchmark document.
pub const TEXT_KEY: &str = "text";

/// A fresh document holding an empty text under [`TEXT_KEY`], created by a
/// fixed actor so every run starts from the same root change.
pub fn empty_text_doc() -> Result<(Automerge, ObjId)> {
    let mut doc = Automerge::new().with_actor(ActorId::from(vec![0xAA; 16]));
    let mut tx = doc.transaction();
    let text = tx.put_object(ROOT, TEXT_KEY, ObjType::Text)?;
    tx.commit();
    Ok((doc, text))
}

pub fn text_obj(doc: &Automerge) -> Result<ObjId> {
    match doc.get(ROOT, TEXT_KEY)? {
        Some((_, id)) => Ok(id),
        None => bail!("document has no {TEXT_KEY:?}"),
    }
}

/// Replay a concurrent trace with its real history: every agent edits its own
/// replica, which holds exactly the transaction's parents, so the resulting
/// document has the trace's concurrency (branches and merges), not a
/// linearisation. Checks that the merged text equals `endContent`.
pub fn build_concurrent(name: &str) -> Result<Automerge> {
    let cache = crate::cache_dir().join(format!("{name}.automerge"));
    if let Ok(bytes) = std::fs::read(&cache)
        && let Ok(doc) = Automerge::load(&bytes)
    {
        return Ok(doc);
    }
    let bytes = read_gz(&traces_dir().join(name))?;
    let trace: Concurrent = serde_json::from_slice(&bytes).with_context(|| format!("parsing {name}"))?;
    let (root, text) = empty_text_doc()?;
    let mut agents: Vec<Automerge> = (0..trace.num_agents)
        .map(|a| root.fork().with_actor(ActorId::from(vec![a as u8 + 1; 16])))
        .collect();
    let mut global = root.fork();
    let mut txn_heads: Vec<Vec<ChangeHash>> = Vec::with_capacity(trace.txns.len());
    for (i, txn) in trace.txns.iter().enumerate() {
        let Some(doc) = agents.get_mut(txn.agent) else {
            bail!("{name}: txn {i} names agent {} of {}", txn.agent, trace.num_agents);
        };
        // Bring the agent's replica up to the transaction's parents.
        let mut missing = Vec::new();
        let mut stack: Vec<ChangeHash> = Vec::new();
        for &p in &txn.parents {
            stack.extend(txn_heads.get(p).with_context(|| format!("{name}: txn {i} has a later parent {p}"))?);
        }
        let mut seen = std::collections::HashSet::new();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) || doc.get_change_by_hash(&h).is_some() {
                continue;
            }
            let change = global.get_change_by_hash(&h).with_context(|| format!("{name}: unknown change"))?;
            stack.extend(change.deps().iter().copied());
            missing.push(change);
        }
        if !missing.is_empty() {
            doc.apply_changes(missing)?;
        }
        let mut tx = doc.transaction();
        for Patch(pos, del, ins) in &txn.patches {
            tx.splice_text(&text, *pos, *del as isize, ins)?;
        }
        let (hash, _) = tx.commit();
        match hash {
            Some(hash) => {
                let change = doc.get_change_by_hash(&hash).context("just committed")?;
                global.apply_changes([change])?;
                txn_heads.push(vec![hash]);
            }
            None => txn_heads.push(
                txn.parents.iter().flat_map(|&p| txn_heads[p].clone()).collect(),
            ),
        }
    }
    let result = global.text(&text)?;
    if result != trace.end_content {
        bail!("{name}: replay ends with {} chars, expected {}", result.chars().count(), trace.end_content.chars().count());
    }
    std::fs::create_dir_all(crate::cache_dir())?;
    std::fs::write(&cache, global.save())?;
    Ok(global)
}
