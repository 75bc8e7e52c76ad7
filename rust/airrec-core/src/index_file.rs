//! Structural validation of a usearch index file before usearch sees it.
//!
//! usearch trusts its files: a neighbour slot past the node count, a neighbour count past a
//! node's capacity or an entry level above the graph's makes a search read out of bounds and
//! crash the process, and the manifest's sha256 proves nothing when whoever changed the file
//! also rewrote the manifest. So the engine parses the file itself (the layout of usearch
//! 2.x `index_dense_gt::save` with vectors included, the way the bundle writer saves it) and
//! checks every field a search dereferences, and that each stored vector is, bit for bit, the
//! checksummed and finiteness-checked bundle vector of its key. What is left unchecked is
//! the shape of the graph, which can only cost recall, not memory safety.
//!
//! Layout (little-endian): `[rows: u32][cols: u32]`, `rows * cols` vector bytes; a 64-byte
//! head (`"usearch"`, version u16 × 3, metric, scalar, key and slot kinds as u8, then
//! count_present, count_deleted, dimensions as u64 and `multi` as u8); the graph header
//! (size, connectivity, connectivity_base, max_level, entry_slot: u64 each); one i16 level per
//! node; then each node: key u64, level i16, and per level 0..=level a neighbour count u32 and
//! `connectivity_base` (level 0) or `connectivity` (higher) u32 slots.

/// Bounds on the graph parameters the engine accepts (usearch defaults are 16 / 32 and a few
/// levels; these only stop absurd values from sizing allocations).
pub const MAX_CONNECTIVITY: u64 = 1024;
pub const MAX_LEVEL: u64 = 64;

const HEAD_BYTES: usize = 64;
const MAGIC: &[u8] = b"usearch";
const METRIC_COS: u8 = b'c';
const SCALAR_F32: u8 = 11;
const KEY_U64: u8 = 14;
const SLOT_U32: u8 = 15;

/// A cursor over the file that never reads past its end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| format!("file ends inside {what}"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn i16(&mut self, what: &str) -> Result<i16, String> {
        Ok(i16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
}

/// What an index must hold: `n` keys, each with the vector `vector(key)` (`None`: not a key
/// of this index).
pub struct Expected<'a> {
    /// What the keys are, for errors ("an item of domain 0", "a trie leaf").
    pub what: String,
    pub dim: usize,
    pub n: usize,
    pub vector: &'a dyn Fn(u64) -> Option<&'a [f32]>,
}

/// Checks `bytes` (a whole index file) against `expected`; the error says what is wrong.
pub fn validate(bytes: &[u8], expected: &Expected<'_>) -> Result<(), String> {
    let mut c = Cursor { bytes, at: 0 };
    let rows = c.u32("the vector matrix header")? as usize;
    let cols = c.u32("the vector matrix header")? as usize;
    if rows != expected.n {
        return Err(format!("index holds {rows} vectors, expected {}", expected.n));
    }
    if cols != expected.dim * 4 {
        return Err(format!("index dimension {} (f32), bundle dim {}", cols as f64 / 4.0, expected.dim));
    }
    let vector_bytes = rows.checked_mul(cols).ok_or("vector matrix size overflows")?;
    let vectors = c.take(vector_bytes, "the vectors")?;

    let head = c.take(HEAD_BYTES, "the index head")?;
    if &head[..MAGIC.len()] != MAGIC {
        return Err("not a usearch index (no magic)".into());
    }
    let mut h = Cursor { bytes: head, at: MAGIC.len() };
    let major = h.u16("the head")?;
    let _minor = h.u16("the head")?;
    let _patch = h.u16("the head")?;
    let kinds = h.take(4, "the head")?;
    let (present, deleted, dims) = (h.u64("the head")?, h.u64("the head")?, h.u64("the head")?);
    let multi = h.take(1, "the head")?[0];
    if major != 2 {
        return Err(format!("usearch format version {major}.x, this build reads 2.x"));
    }
    if kinds != [METRIC_COS, SCALAR_F32, KEY_U64, SLOT_U32] {
        return Err(format!("index kinds {kinds:?}, expected cosine / f32 / u64 keys / u32 slots"));
    }
    if present != rows as u64 || deleted != 0 || dims != expected.dim as u64 || multi != 0 {
        return Err(format!(
            "index head: {present} present, {deleted} deleted, dim {dims}, multi {multi}; expected {rows}, 0, {}, 0",
            expected.dim
        ));
    }

    let size = c.u64("the graph header")?;
    let connectivity = c.u64("the graph header")?;
    let connectivity_base = c.u64("the graph header")?;
    let max_level = c.u64("the graph header")?;
    let entry_slot = c.u64("the graph header")?;
    if size != rows as u64 {
        return Err(format!("graph has {size} nodes, the index {rows} vectors"));
    }
    // An empty graph stores max_level -1 and usearch reads nothing past the header.
    if size == 0 {
        return if c.at == bytes.len() { Ok(()) } else { Err("trailing bytes after an empty graph".into()) };
    }
    if !(2..=MAX_CONNECTIVITY).contains(&connectivity) || !(connectivity..=MAX_CONNECTIVITY).contains(&connectivity_base) {
        return Err(format!(
            "connectivity {connectivity} / base {connectivity_base}: need 2 <= connectivity <= base <= {MAX_CONNECTIVITY}"
        ));
    }
    if max_level > MAX_LEVEL {
        return Err(format!("max level {max_level} > {MAX_LEVEL}"));
    }
    if entry_slot >= size {
        return Err(format!("entry slot {entry_slot} outside 0..{size}"));
    }
    let levels = (0..rows).map(|_| c.i16("the node levels")).collect::<Result<Vec<i16>, String>>()?;
    if let Some((i, l)) = levels.iter().enumerate().find(|(_, &l)| l < 0 || l as u64 > max_level) {
        return Err(format!("node {i}: level {l} outside 0..={max_level}"));
    }
    // Searches start at the entry node on the top level and descend.
    if (levels[entry_slot as usize] as u64) != max_level {
        return Err(format!("entry node level {} != max level {max_level}", levels[entry_slot as usize]));
    }

    let (conn, conn_base) = (connectivity as usize, connectivity_base as usize);
    let mut seen_keys = std::collections::HashSet::with_capacity(rows);
    for (slot, &level) in levels.iter().enumerate() {
        let key = c.u64("a node")?;
        let node_level = c.i16("a node")?;
        if node_level != level {
            return Err(format!("node {slot}: level {node_level}, the level table says {level}"));
        }
        for l in 0..=level as usize {
            let capacity = if l == 0 { conn_base } else { conn };
            let count = c.u32("a neighbour list")? as usize;
            let mut slots = Cursor { bytes: c.take(capacity * 4, "a neighbour list")?, at: 0 };
            if count > capacity {
                return Err(format!("node {slot} level {l}: {count} neighbours, capacity {capacity}"));
            }
            for _ in 0..count {
                let s = slots.u32("a neighbour list")? as usize;
                // A neighbour must exist on the level it is linked on.
                if s >= rows || (levels[s] as usize) < l {
                    return Err(format!("node {slot} level {l}: neighbour slot {s} is not a node of that level"));
                }
            }
        }
        let Some(want) = (expected.vector)(key) else {
            return Err(format!("node {slot}: key {key} is not {}", expected.what));
        };
        if !seen_keys.insert(key) {
            return Err(format!("key {key} appears twice"));
        }
        let mut got = Cursor { bytes: &vectors[slot * cols..(slot + 1) * cols], at: 0 };
        let same = want.iter().all(|w| got.u32("a vector") == Ok(w.to_bits()));
        if !same {
            return Err(format!("the vector of key {key} differs from the bundle's"));
        }
    }
    if c.at != bytes.len() {
        return Err(format!("{} trailing bytes after the graph", bytes.len() - c.at));
    }
    Ok(())
}
