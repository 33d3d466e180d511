//! What one sync message may cost to read, decided before Automerge reads it.
//!
//! A sync message is small on the wire but Automerge expands it in three
//! places without a bound of its own:
//! - deflated chunks (a compressed change, the deflated columns of a saved
//!   document or a bundle) are inflated whole: a 58 KB frame held a document
//!   that inflated to 60 MB;
//! - run-length-encoded columns are expanded operation by operation: a
//!   kilobyte of deflated columns can hold a million operations, seconds of
//!   CPU to apply, and a hand-made run can claim billions;
//! - the Bloom filters of a `have` are used as sent: a filter with no bits
//!   divides by zero (a panic), one with two billion probes allocates and
//!   loops for minutes.
//!
//! [`check_sync_message`] walks the chunk headers and columns (the storage
//! format: <https://alexjg.github.io/automerge-storage-docs/>), inflating with
//! a bound and counting run lengths without expanding them, and refuses a
//! message before anything is allocated past the limits. It is stricter than
//! Automerge where that is cheap: a chunk it cannot walk is refused, so a
//! shape it does not understand never reaches the expanding code unbounded.

use std::io::Read;

use automerge::sync;

use crate::ProtocolError;

/// How much one sync message may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Bytes of all chunks of a message once inflated (uncompressed chunks
    /// count their own size).
    pub max_inflated_bytes: usize,
    /// Operations (and changes) all chunks of a message hold once their
    /// run-length encoding is expanded.
    pub max_operations: usize,
}

/// What a message expands to (both within the limits when returned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCost {
    pub inflated_bytes: usize,
    pub operations: usize,
}

/// Bloom filters as Automerge builds them use 7 probes and 10 bits an entry;
/// anything far beyond that is not a filter but a way to spend our CPU.
const MAX_BLOOM_PROBES: u64 = 64;
const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;

/// Check the payload of a `sync` or `request` message. A payload that is not
/// an Automerge sync message passes: the engine reports it.
pub fn check_sync_message(data: &[u8], limits: &ReadLimits) -> Result<ReadCost, ProtocolError> {
    let Ok(message) = sync::Message::decode(data) else {
        return Ok(ReadCost::default());
    };
    check_decoded(&message, limits)
}

/// [`check_sync_message`] for a payload the runtime has decoded already
/// (decoding allocates no more than the frame; applying it is what expands).
pub fn check_decoded(message: &sync::Message, limits: &ReadLimits) -> Result<ReadCost, ProtocolError> {
    for have in &message.have {
        check_bloom(&have.bloom.to_bytes())?;
    }
    let mut budget = Budget { limits: *limits, cost: ReadCost::default() };
    for chunk in message.changes.iter() {
        check_chunks(chunk, &mut budget)?;
    }
    Ok(budget.cost)
}

/// Check a buffer of concatenated storage chunks (what a sync message's
/// `changes` entries and `Automerge::load_incremental` take).
pub fn check_chunks_within(bytes: &[u8], limits: &ReadLimits) -> Result<ReadCost, ProtocolError> {
    let mut budget = Budget { limits: *limits, cost: ReadCost::default() };
    check_chunks(bytes, &mut budget)?;
    Ok(budget.cost)
}

fn malformed(reason: &'static str) -> ProtocolError {
    ProtocolError::MalformedChunk { reason }
}

fn check_bloom(bytes: &[u8]) -> Result<(), ProtocolError> {
    if bytes.is_empty() {
        // No entries: Automerge never probes it.
        return Ok(());
    }
    let mut r = Reader::new(bytes);
    let entries = r.uleb()?;
    let bits_per_entry = r.uleb()?;
    let probes = r.uleb()?;
    let bits = r.rest();
    if entries == 0 {
        return Ok(());
    }
    if bits_per_entry == 0 || bits.is_empty() {
        return Err(ProtocolError::BadBloomFilter { reason: "it has entries but no bits" });
    }
    if probes > MAX_BLOOM_PROBES || bits_per_entry > MAX_BLOOM_BITS_PER_ENTRY {
        return Err(ProtocolError::BadBloomFilter { reason: "more probes or bits per entry than any filter uses" });
    }
    Ok(())
}

struct Budget {
    limits: ReadLimits,
    cost: ReadCost,
}

impl Budget {
    fn bytes(&mut self, n: usize) -> Result<(), ProtocolError> {
        self.cost.inflated_bytes = self.cost.inflated_bytes.saturating_add(n);
        if self.cost.inflated_bytes > self.limits.max_inflated_bytes {
            return Err(ProtocolError::InflatedTooLarge { limit: self.limits.max_inflated_bytes });
        }
        Ok(())
    }

    fn bytes_left(&self) -> usize {
        self.limits.max_inflated_bytes.saturating_sub(self.cost.inflated_bytes)
    }

    fn operations(&mut self, n: u64) -> Result<(), ProtocolError> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.cost.operations = self.cost.operations.saturating_add(n);
        if self.cost.operations > self.limits.max_operations {
            return Err(ProtocolError::TooManyOperations { limit: self.limits.max_operations });
        }
        Ok(())
    }

    fn operations_left(&self) -> u64 {
        u64::try_from(self.limits.max_operations.saturating_sub(self.cost.operations)).unwrap_or(u64::MAX)
    }
}

pub(crate) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

fn check_chunks(bytes: &[u8], budget: &mut Budget) -> Result<(), ProtocolError> {
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        if r.take(4)? != MAGIC {
            return Err(malformed("a chunk does not start with Automerge's magic bytes"));
        }
        r.take(4)?; // checksum: Automerge checks it
        let kind = r.take(1)?[0];
        let length = r.len_uleb()?;
        let body = r.take(length)?;
        match kind {
            0 => {
                budget.bytes(body.len())?;
                document(body, budget)?;
            }
            1 => {
                budget.bytes(body.len())?;
                change(body, budget)?;
            }
            2 => {
                let inflated = inflate(body, budget)?;
                change(&inflated, budget)?;
            }
            3 => {
                budget.bytes(body.len())?;
                bundle(body, budget)?;
            }
            _ => return Err(malformed("unknown chunk type")),
        }
    }
    Ok(())
}

/// Inflate `deflated`, stopping as soon as the output passes what the budget
/// has left. The inflated bytes are charged to the budget.
fn inflate(deflated: &[u8], budget: &mut Budget) -> Result<Vec<u8>, ProtocolError> {
    let left = budget.bytes_left();
    let mut out = Vec::new();
    let decoder = flate2::bufread::DeflateDecoder::new(deflated);
    decoder
        .take(u64::try_from(left).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|_| malformed("deflated data that does not inflate"))?;
    budget.bytes(out.len())?;
    Ok(out)
}

/// A change: its header, then its operation columns (never deflated).
fn change(body: &[u8], budget: &mut Budget) -> Result<(), ProtocolError> {
    let mut r = Reader::new(body);
    hashes(&mut r)?; // dependencies
    r.bytes_uleb()?; // actor
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.uleb()?; // time (signed; the same bytes)
    r.bytes_uleb()?; // message
    actors(&mut r)?; // other actors
    let columns = columns(&mut r)?;
    let mut most = 0;
    for column in &columns {
        if column.deflated {
            return Err(malformed("a change with deflated columns"));
        }
        let data = r.take(column.len)?;
        most = most.max(count_elements(column.kind, data, budget.operations_left())?);
    }
    budget.operations(most)
}

/// A saved document: actors, heads, change and operation columns (each
/// possibly deflated), then head indices.
fn document(body: &[u8], budget: &mut Budget) -> Result<(), ProtocolError> {
    let mut r = Reader::new(body);
    actors(&mut r)?;
    hashes(&mut r)?; // heads
    let changes = columns(&mut r)?;
    let ops = columns(&mut r)?;
    column_data(&mut r, &changes, budget)?;
    column_data(&mut r, &ops, budget)
}

/// A bundle: dependencies, actors, change columns and data, operation
/// columns and data (each possibly deflated).
fn bundle(body: &[u8], budget: &mut Budget) -> Result<(), ProtocolError> {
    let mut r = Reader::new(body);
    hashes(&mut r)?; // dependencies
    actors(&mut r)?;
    let changes = columns(&mut r)?;
    column_data(&mut r, &changes, budget)?;
    let ops = columns(&mut r)?;
    column_data(&mut r, &ops, budget)
}

/// Read the data of one group of columns, inflating deflated ones within the
/// budget, and charge the longest column's element count as operations.
fn column_data(r: &mut Reader<'_>, columns: &[Column], budget: &mut Budget) -> Result<(), ProtocolError> {
    let mut most = 0;
    for column in columns {
        let data = r.take(column.len)?;
        let count = if column.deflated {
            let inflated = inflate(data, budget)?;
            count_elements(column.kind, &inflated, budget.operations_left())?
        } else {
            count_elements(column.kind, data, budget.operations_left())?
        };
        most = most.max(count);
    }
    budget.operations(most)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    /// Run-length encoded LEB128 integers (group, actor, integer, delta, value metadata).
    RleInteger,
    /// Run-length encoded strings (a LEB128 length, then the bytes).
    RleString,
    /// Alternating run lengths of false and true.
    Boolean,
    /// Raw value bytes, delimited by the value metadata column.
    Raw,
}

struct Column {
    kind: ColumnKind,
    deflated: bool,
    len: usize,
}

fn columns(r: &mut Reader<'_>) -> Result<Vec<Column>, ProtocolError> {
    let count = r.uleb()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let spec = r.uleb()?;
        let len = r.len_uleb()?;
        let kind = match spec & 0b111 {
            4 => ColumnKind::Boolean,
            5 => ColumnKind::RleString,
            7 => ColumnKind::Raw,
            _ => ColumnKind::RleInteger,
        };
        out.push(Column { kind, deflated: spec & 0b1000 != 0, len });
    }
    Ok(out)
}

/// How many values a column holds once its runs are expanded, without
/// expanding them. Stops counting past `stop` (the caller refuses then).
fn count_elements(kind: ColumnKind, data: &[u8], stop: u64) -> Result<u64, ProtocolError> {
    let mut r = Reader::new(data);
    let mut count: u64 = 0;
    match kind {
        ColumnKind::Raw => return Ok(0),
        ColumnKind::Boolean => {
            while !r.is_empty() && count <= stop {
                count = count.saturating_add(r.uleb()?);
            }
        }
        ColumnKind::RleInteger | ColumnKind::RleString => {
            let value = |r: &mut Reader<'_>| -> Result<(), ProtocolError> {
                if kind == ColumnKind::RleString {
                    r.bytes_uleb().map(|_| ())
                } else {
                    r.uleb().map(|_| ())
                }
            };
            while !r.is_empty() && count <= stop {
                let run = r.sleb()?;
                if run > 0 {
                    // `run` copies of one value.
                    count = count.saturating_add(run.unsigned_abs());
                    value(&mut r)?;
                } else if run < 0 {
                    // A literal run: that many values follow.
                    let n = run.unsigned_abs();
                    for _ in 0..n {
                        value(&mut r)?;
                    }
                    count = count.saturating_add(n);
                } else {
                    // A run of nulls.
                    count = count.saturating_add(r.uleb()?);
                }
            }
        }
    }
    Ok(count)
}

fn hashes(r: &mut Reader<'_>) -> Result<(), ProtocolError> {
    let count = r.len_uleb()?;
    r.take(count.checked_mul(32).ok_or_else(|| malformed("too many hashes"))?)?;
    Ok(())
}

fn actors(r: &mut Reader<'_>) -> Result<(), ProtocolError> {
    let count = r.uleb()?;
    for _ in 0..count {
        r.bytes_uleb()?;
    }
    Ok(())
}

/// A cursor over bytes that fails, never panics, at their end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.bytes.len() {
            return Err(malformed("a length runs past the end of its chunk"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn uleb(&mut self) -> Result<u64, ProtocolError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("an over-long LEB128 number"))
    }

    fn sleb(&mut self) -> Result<i64, ProtocolError> {
        let mut value: i64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= i64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if shift + 7 < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << (shift + 7);
                }
                return Ok(value);
            }
        }
        Err(malformed("an over-long LEB128 number"))
    }

    /// A LEB128 length that must fit in what is left.
    fn len_uleb(&mut self) -> Result<usize, ProtocolError> {
        let n = self.uleb()?;
        usize::try_from(n).ok().filter(|n| *n <= self.bytes.len()).ok_or_else(|| malformed("a length runs past the end of its chunk"))
    }

    /// A LEB128 length and that many bytes.
    fn bytes_uleb(&mut self) -> Result<&'a [u8], ProtocolError> {
        let n = self.len_uleb()?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ROOT};

    const GENEROUS: ReadLimits = ReadLimits { max_inflated_bytes: 64 << 20, max_operations: 10_000_000 };

    use crate::fuzzing::write_uleb128 as leb;

    /// A document whose text holds `n` characters typed in one change (one
    /// operation each).
    fn doc_with_text(n: usize) -> Automerge {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "text", ObjType::Text).expect("text");
        tx.splice_text(&text, 0, 0, &"ab".repeat(n / 2)).expect("typing");
        tx.put(ROOT, "title", "a title that is long enough to be worth compressing, ".repeat(20)).expect("title");
        tx.commit();
        doc
    }

    fn sync_with(chunks: Vec<Vec<u8>>) -> Vec<u8> {
        sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: sync::ChunkList::from(chunks),
            flags: None,
            version: sync::MessageVersion::V1,
        }
        .encode()
    }

    #[test]
    fn what_automerge_writes_passes_and_is_measured() {
        let doc = doc_with_text(10_000);
        let change = doc.get_changes(&[]).pop().expect("a change");
        let raw = change.raw_bytes().to_vec();
        let mut compressed_change = change.clone();
        let compressed = compressed_change.bytes().to_vec();
        assert_ne!(raw, compressed, "the test needs a compressed change");
        let saved = doc.save();
        let saved_plain = doc.save_nocompress();
        for (what, bytes) in [("change", &raw), ("compressed change", &compressed), ("document", &saved), ("uncompressed document", &saved_plain)] {
            let cost = check_sync_message(&sync_with(vec![bytes.clone()]), &GENEROUS).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(cost.operations >= 10_000 && cost.operations < 10_100, "{what}: {cost:?}");
            assert!(cost.inflated_bytes >= bytes.len().min(raw.len()) / 2, "{what}: {cost:?}");
        }
        // Several chunks in one entry, as `save_after` writes them.
        let both = [raw.clone(), saved.clone()].concat();
        let cost = check_sync_message(&sync_with(vec![both]), &GENEROUS).expect("two chunks");
        assert!(cost.operations >= 20_000, "{cost:?}");
    }

    #[test]
    fn a_deflated_document_over_the_limit_is_refused_before_it_is_inflated() {
        let doc = doc_with_text(200_000);
        let saved = doc.save();
        assert!(saved.len() < 20_000, "deflated to {} bytes", saved.len());
        let limits = ReadLimits { max_inflated_bytes: 64 * 1024, max_operations: 10_000_000 };
        let error = check_sync_message(&sync_with(vec![saved]), &limits).expect_err("over the limit");
        assert!(matches!(error, ProtocolError::InflatedTooLarge { limit: 65_536 }), "{error}");
    }

    #[test]
    fn a_compressed_change_over_the_limit_is_refused() {
        let doc = doc_with_text(200_000);
        let mut change = doc.get_changes(&[]).pop().expect("change").clone();
        let compressed = change.bytes().to_vec();
        let limits = ReadLimits { max_inflated_bytes: 64 * 1024, max_operations: 10_000_000 };
        let error = check_sync_message(&sync_with(vec![compressed]), &limits).expect_err("over the limit");
        assert!(matches!(error, ProtocolError::InflatedTooLarge { .. }), "{error}");
    }

    #[test]
    fn too_many_operations_are_refused_however_few_bytes_hold_them() {
        let doc = doc_with_text(50_000);
        let limits = ReadLimits { max_inflated_bytes: 64 << 20, max_operations: 10_000 };
        let error = check_sync_message(&sync_with(vec![doc.save()]), &limits).expect_err("over the limit");
        assert!(matches!(error, ProtocolError::TooManyOperations { limit: 10_000 }), "{error}");
    }

    #[test]
    fn a_hand_made_run_of_a_billion_operations_is_refused_at_once() {
        let bomb = crate::fuzzing::run_length_bomb(1 << 40);
        assert!(bomb.len() < 100, "{} bytes", bomb.len());
        let started = std::time::Instant::now();
        let error = check_sync_message(&sync_with(vec![bomb]), &GENEROUS).expect_err("refused");
        assert!(matches!(error, ProtocolError::TooManyOperations { .. }), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    fn with_bloom(entries: u64, bits_per_entry: u64, probes: u64, bits: &[u8]) -> Vec<u8> {
        let mut m = vec![0x42u8];
        leb(&mut m, 0); // heads
        leb(&mut m, 0); // need
        leb(&mut m, 1); // one have
        leb(&mut m, 0); // last sync
        let mut bloom = Vec::new();
        leb(&mut bloom, entries);
        leb(&mut bloom, bits_per_entry);
        leb(&mut bloom, probes);
        bloom.extend_from_slice(bits);
        leb(&mut m, bloom.len() as u64);
        m.extend(bloom);
        leb(&mut m, 0); // changes
        m
    }

    #[test]
    fn bloom_filters_that_would_panic_or_spin_are_refused() {
        let zero_bits = with_bloom(1, 0, 7, &[]);
        assert!(matches!(check_sync_message(&zero_bits, &GENEROUS), Err(ProtocolError::BadBloomFilter { .. })));
        let spin = with_bloom(1, 8, 2_000_000_000, &[0xff]);
        assert!(matches!(check_sync_message(&spin, &GENEROUS), Err(ProtocolError::BadBloomFilter { .. })));
        // What Automerge itself sends passes.
        let mut doc = doc_with_text(3);
        let mut state = sync::State::new();
        use automerge::sync::SyncDoc;
        let first = doc.generate_sync_message(&mut state).expect("a message").encode();
        check_sync_message(&first, &GENEROUS).expect("automerge's own message");
        let mut other = Automerge::new();
        let mut other_state = sync::State::new();
        other.receive_sync_message(&mut other_state, sync::Message::decode(&first).expect("decodes")).expect("receives");
        let reply = other.generate_sync_message(&mut other_state).expect("a reply").encode();
        check_sync_message(&reply, &GENEROUS).expect("a reply with a filter");
        let _ = &mut doc;
    }

    #[test]
    fn garbage_is_refused_never_a_panic() {
        let doc = doc_with_text(100);
        let saved = doc.save();
        for cut in 0..saved.len() {
            let _ = check_chunks_within(&saved[..cut], &GENEROUS);
        }
        let mut flipped = saved.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0x55;
            let _ = check_chunks_within(&flipped, &GENEROUS);
            flipped[i] ^= 0x55;
        }
        assert!(check_chunks_within(b"not a chunk at all", &GENEROUS).is_err());
    }
}
