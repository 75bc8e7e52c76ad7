//! Composition (docs/online-path.md §4): multi-head attention with the candidate as query over
//! chain nodes, evidence events and a null slot, then the output projection and score head.
//!
//! Node and item projections never change online, so they are folded once at export
//! ([`Composer::fold`]), stored in the bundle and memory-mapped at load: the hot path is dot
//! products and weighted sums over `attn_dim`-sized rows.

use rayon::prelude::*;

use crate::kernels::{dot_f32, fold_lanes, matmul_rows, repeat_lanes, Simd};
use crate::npy::Array;

/// The trained weights, as stored in the bundle.
#[derive(Debug)]
pub struct ComposeWeights {
    pub wq: Array<f32>,
    pub wk: Array<f32>,
    pub wv: Array<f32>,
    pub wo: Array<f32>,
    pub bo: Array<f32>,
    pub type_key: Array<f32>,
    pub type_value: Array<f32>,
    pub weight_bias: Array<f32>,
    pub score_w_out: Array<f32>,
    pub score_w_inter: Array<f32>,
    pub score_bias: Array<f32>,
}

/// The arrays format v2 stores beside the weights (docs/online-path.md §0), in bundle order.
pub const FOLDED_ARRAYS: [&str; 3] = ["fold_item_rows", "fold_item_kv", "fold_node_kv"];

/// Folded projections, as stored in a v2 bundle and memory-mapped at load (so every process
/// serving the same bundle shares their pages). Per item, everything that does not depend on
/// the user is one contiguous row (`[x | q | r | type_logit | c]`, see [`CandidateView`],
/// padded to [`Composer::row_stride`]) so a candidate costs one prefetchable memory stream;
/// keys and values are interleaved `[k | v]` rows of `2 * attn_dim`.
#[derive(Debug)]
pub struct Folded {
    /// `[n_items, row_stride]`
    pub item_rows: Array<f32>,
    /// `[n_items, 2 * attn_dim]`
    pub item_kv: Array<f32>,
    /// `[n_nodes, 2 * attn_dim]`
    pub node_kv: Array<f32>,
}

impl Folded {
    /// No rows (a composer before [`Composer::with_folded`]).
    pub fn empty() -> Self {
        let empty = || Array::from_vec(Vec::new(), vec![0, 0]);
        Folded { item_rows: empty(), item_kv: empty(), node_kv: empty() }
    }

    /// `(bundle array name, array)` in [`FOLDED_ARRAYS`] order.
    pub fn arrays(&self) -> [(&'static str, &Array<f32>); 3] {
        [(FOLDED_ARRAYS[0], &self.item_rows), (FOLDED_ARRAYS[1], &self.item_kv), (FOLDED_ARRAYS[2], &self.node_kv)]
    }
}

/// The weights plus their folded forms.
#[derive(Debug)]
pub struct Composer {
    pub weights: ComposeWeights,
    pub dim: usize,
    pub attn_dim: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub n_types: usize,
    /// `1/sqrt(dk)`.
    pub scale: f32,
    folded: Folded,
    /// `compose_wo` and `compose_type_value` in the head-interleaved basis (see [`interleave`]);
    /// a few KB, so derived at load.
    wo: Vec<f32>,
    type_value: Vec<f32>,
}

/// Reorders an attention-space vector from head-major (`h * dk + j`) to head-interleaved
/// (`j * H + h`) order. In that basis the per-head dot products and weighted sums of attention
/// become full-width SIMD loops with no per-head horizontal reduction; everything that lives in
/// attention space (queries, keys, values, `r`, the rows of `wo`) is stored permuted, so the
/// result is unchanged.
#[inline]
pub fn interleave(x: &[f32], n_heads: usize, out: &mut [f32]) {
    let dk = x.len() / n_heads;
    for h in 0..n_heads {
        for j in 0..dk {
            out[j * n_heads + h] = x[h * dk + j];
        }
    }
}

fn interleave_rows(rows: &mut [f32], width: usize, n_heads: usize) {
    let mut tmp = vec![0.0f32; width];
    for row in rows.chunks_exact_mut(width) {
        interleave(row, n_heads, &mut tmp);
        row.copy_from_slice(&tmp);
    }
}

/// The user-independent part of a candidate: retrieval vector `x`, query `q` (pre-scaled by
/// `1/sqrt(dk)`), `q·type_key[t]` per type and head, and the score head folded through the
/// output projection: `score = r · concat + c`.
#[derive(Clone, Copy)]
pub struct CandidateView<'a> {
    pub x: &'a [f32],
    pub q: &'a [f32],
    pub r: &'a [f32],
    pub type_logit: &'a [f32],
    pub c: f32,
}

/// Scratch space of one worker thread for the row functions (reused across its rows, so
/// folding or verifying a catalogue allocates once per thread, not once per row).
type Scratch = Vec<f32>;

fn fold_rows(rows: &[f32], d: usize, row_len: usize, f: impl Fn(&[f32], &mut [f32], &mut Scratch) + Sync) -> Array<f32> {
    let n = rows.len() / d;
    let mut out = vec![0.0f32; n * row_len];
    out.par_chunks_mut(row_len).zip(rows.par_chunks(d)).for_each_init(Scratch::new, |t, (o, x)| f(x, o, t));
    Array::from_vec(out, vec![n, row_len])
}

/// Why a stored folded row is not what the weights give: `(row, column, stored, expected)`.
pub type FoldMismatch = (usize, usize, f32, f32);

/// Recomputes every row of `stored` (`[n, width]`, of which the first `used` columns are
/// checked) from `rows` (`[n, d]`) with `f`, streaming (no copy of the array), and returns the
/// first row that differs by more than float rounding across SIMD paths:
/// `|stored − expected| ≤ 1e-4 · (1 + max |expected|)` per row.
fn first_mismatch(
    stored: &[f32],
    width: usize,
    used: usize,
    rows: &[f32],
    d: usize,
    f: impl Fn(&[f32], &mut [f32], &mut Scratch) + Sync,
) -> Option<FoldMismatch> {
    stored
        .par_chunks(width)
        .zip(rows.par_chunks(d))
        .enumerate()
        .map_init(
            || (vec![0.0f32; width], Scratch::new()),
            |(buf, scratch), (i, (s, x))| {
                f(x, buf, scratch);
                let scale = 1.0 + buf[..used].iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let bad = s[..used].iter().zip(&buf[..used]).position(|(a, b)| {
                    let diff = (a - b).abs();
                    !diff.is_finite() || diff > 1e-4 * scale
                })?;
                Some((i, bad, s[bad], buf[bad]))
            },
        )
        .find_first(Option::is_some)
        .flatten()
}

impl Composer {
    /// A composer over `weights` and the folded arrays `folded` (from a v2 bundle, or
    /// [`Folded::empty`] to attach them later); shapes are the caller's to check against
    /// [`Composer::expected_shapes`].
    pub fn new(weights: ComposeWeights, folded: Folded, dim: usize, n_heads: usize) -> Self {
        let attn_dim = weights.wq.shape()[1];
        let head_dim = attn_dim / n_heads;
        let n_types = weights.type_key.shape()[0];
        let a = attn_dim;
        // Rows of wo are indexed by the attention basis: permute them like the vectors.
        let mut wo = vec![0.0f32; a * dim];
        for i in 0..a {
            let (h, j) = (i / head_dim, i % head_dim);
            let to = j * n_heads + h;
            wo[to * dim..(to + 1) * dim].copy_from_slice(&weights.wo[i * dim..(i + 1) * dim]);
        }
        let mut type_value = weights.type_value.to_vec();
        interleave_rows(&mut type_value, a, n_heads);
        Composer { weights, dim, attn_dim, n_heads, head_dim, n_types, scale: 1.0 / (head_dim as f32).sqrt(), folded, wo, type_value }
    }

    /// Folds `weights` over the node and item vectors (what a v2 bundle stores; the writer
    /// calls this, the loader only checks it): a composer whose folded arrays are owned.
    pub fn fold(weights: ComposeWeights, node_vectors: &[f32], item_vectors: &[f32], dim: usize, n_heads: usize) -> Self {
        let c = Composer::new(weights, Folded::empty(), dim, n_heads);
        let item_kv = fold_rows(item_vectors, dim, 2 * c.attn_dim, |x, o, t| c.fill_kv_row_with(x, o, t));
        let node_kv = fold_rows(node_vectors, dim, 2 * c.attn_dim, |x, o, t| c.fill_kv_row_with(x, o, t));
        let item_rows = fold_rows(item_vectors, dim, c.row_stride(), |x, o, t| c.fill_candidate_row_with(x, o, t));
        c.with_folded(Folded { item_rows, item_kv, node_kv })
    }

    /// This composer with `folded` attached.
    pub fn with_folded(mut self, folded: Folded) -> Self {
        self.folded = folded;
        self
    }

    /// The folded arrays (to write them, or to inspect them).
    pub fn folded(&self) -> &Folded {
        &self.folded
    }

    /// Shapes of the folded arrays for `n_items` items and `n_nodes` nodes, in
    /// [`FOLDED_ARRAYS`] order.
    pub fn expected_shapes(&self, n_items: usize, n_nodes: usize) -> [[usize; 2]; 3] {
        [[n_items, self.row_stride()], [n_items, 2 * self.attn_dim], [n_nodes, 2 * self.attn_dim]]
    }

    /// Checks, row by row and without copying, that the attached folded arrays are what the
    /// weights give for these vectors; `Err((array name, mismatch))` names the first one that
    /// is not (a bundle whose folded files were edited and re-checksummed).
    pub fn verify_folded(&self, node_vectors: &[f32], item_vectors: &[f32]) -> std::result::Result<(), (&'static str, FoldMismatch)> {
        let (d, kv) = (self.dim, 2 * self.attn_dim);
        let f = &self.folded;
        let rows = first_mismatch(&f.item_rows, self.row_stride(), self.candidate_row_len(), item_vectors, d, |x, o, t| {
            self.fill_candidate_row_with(x, o, t)
        });
        let item_kv = || first_mismatch(&f.item_kv, kv, kv, item_vectors, d, |x, o, t| self.fill_kv_row_with(x, o, t));
        let node_kv = || first_mismatch(&f.node_kv, kv, kv, node_vectors, d, |x, o, t| self.fill_kv_row_with(x, o, t));
        let found = rows.map(|m| (FOLDED_ARRAYS[0], m)).or_else(|| item_kv().map(|m| (FOLDED_ARRAYS[1], m)));
        match found.or_else(|| node_kv().map(|m| (FOLDED_ARRAYS[2], m))) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Width of a stored candidate row: [`Composer::candidate_row_len`] rounded up to whole
    /// 64-byte cache lines.
    pub fn row_stride(&self) -> usize {
        self.candidate_row_len().div_ceil(16) * 16
    }

    /// The folded `[k | v]` row (head-interleaved) of a node or item vector `x`.
    pub fn fill_kv_row(&self, x: &[f32], o: &mut [f32]) {
        self.fill_kv_row_with(x, o, &mut Scratch::new());
    }

    /// [`Composer::fill_kv_row`] with caller-owned scratch space.
    fn fill_kv_row_with(&self, x: &[f32], o: &mut [f32], scratch: &mut Scratch) {
        let a = self.attn_dim;
        scratch.resize(a, 0.0);
        let t = &mut scratch[..a];
        let (k, v) = o[..2 * a].split_at_mut(a);
        matmul_rows(x, self.dim, &self.weights.wk, a, 1.0, t);
        interleave(t, self.n_heads, k);
        matmul_rows(x, self.dim, &self.weights.wv, a, 1.0, t);
        interleave(t, self.n_heads, v);
    }

    /// Length of a candidate row: `x`, `q`, `r`, type logits, `c`.
    pub fn candidate_row_len(&self) -> usize {
        self.dim + 2 * self.attn_dim + self.n_types * self.n_heads + 1
    }

    /// Computes a candidate row for retrieval vector `x` (items outside the bundle use this
    /// directly; bundle items have theirs precomputed).
    pub fn fill_candidate_row(&self, x: &[f32], row: &mut [f32]) {
        self.fill_candidate_row_with(x, row, &mut Scratch::new());
    }

    /// [`Composer::fill_candidate_row`] with caller-owned scratch space.
    fn fill_candidate_row_with(&self, x: &[f32], row: &mut [f32], scratch: &mut Scratch) {
        let (d, a, h, dk) = (self.dim, self.attn_dim, self.n_heads, self.head_dim);
        let w = &self.weights;
        let (xs, rest) = row.split_at_mut(d);
        xs.copy_from_slice(x);
        let (q, rest) = rest.split_at_mut(a);
        scratch.resize(2 * a + d, 0.0);
        let (q_heads, tail) = scratch.split_at_mut(a);
        let (g, r_heads) = tail.split_at_mut(d);
        matmul_rows(x, d, &w.wq, a, self.scale, q_heads);
        interleave(q_heads, h, q);
        let (r, rest) = rest.split_at_mut(a);
        // g = w_out + w_inter ⊙ x; r = wo g; c = g · bo + b
        for (i, gi) in g.iter_mut().enumerate() {
            *gi = w.score_w_out[i] + w.score_w_inter[i] * x[i];
        }
        for (j, rj) in r_heads.iter_mut().enumerate() {
            *rj = dot_f32(&w.wo[j * d..(j + 1) * d], g);
        }
        interleave(r_heads, h, r);
        let (tl, rest) = rest.split_at_mut(self.n_types * h);
        for t in 0..self.n_types {
            let tk = &w.type_key[t * a..(t + 1) * a];
            for hh in 0..h {
                tl[t * h + hh] = dot_f32(&q_heads[hh * dk..(hh + 1) * dk], &tk[hh * dk..(hh + 1) * dk]);
            }
        }
        rest[0] = dot_f32(g, &w.bo) + w.score_bias[0];
    }

    /// A view of a candidate row (from `item_rows` or a caller's buffer).
    #[inline(always)]
    pub fn view<'a>(&self, row: &'a [f32]) -> CandidateView<'a> {
        let (d, a, th) = (self.dim, self.attn_dim, self.n_types * self.n_heads);
        CandidateView {
            x: &row[..d],
            q: &row[d..d + a],
            r: &row[d + a..d + 2 * a],
            type_logit: &row[d + 2 * a..d + 2 * a + th],
            c: row[d + 2 * a + th],
        }
    }

    #[inline(always)]
    pub fn item_row(&self, item: u32) -> &[f32] {
        let s = self.folded.item_rows.shape()[1];
        &self.folded.item_rows[item as usize * s..item as usize * s + self.candidate_row_len()]
    }

    /// The folded K/V tables, dereferenced once: a composition reads every slot's row through
    /// one of these rather than dereferencing the (possibly memory-mapped) arrays per slot.
    #[inline(always)]
    pub fn kv_tables(&self) -> KvTables<'_> {
        KvTables { node: &self.folded.node_kv, item: &self.folded.item_kv, attn_dim: self.attn_dim }
    }

    #[inline(always)]
    pub fn node_kv(&self, node: u32) -> (&[f32], &[f32]) {
        self.kv_tables().get(SlotRow::Node(node))
    }

    #[inline(always)]
    pub fn item_kv(&self, item: u32) -> (&[f32], &[f32]) {
        self.kv_tables().get(SlotRow::Item(item))
    }

    /// The folded key and value of a slot's row.
    #[inline(always)]
    pub fn slot_kv(&self, row: SlotRow) -> (&[f32], &[f32]) {
        self.kv_tables().get(row)
    }
}

/// The folded `[k | v]` rows of nodes and items as plain slices ([`Composer::kv_tables`]).
#[derive(Clone, Copy, Debug)]
pub struct KvTables<'a> {
    node: &'a [f32],
    item: &'a [f32],
    attn_dim: usize,
}

impl<'a> KvTables<'a> {
    /// The folded key and value of a slot's row.
    #[inline(always)]
    pub fn get(&self, row: SlotRow) -> (&'a [f32], &'a [f32]) {
        let (table, r) = match row {
            SlotRow::Node(i) => (self.node, i as usize),
            SlotRow::Item(i) => (self.item, i as usize),
        };
        let a = self.attn_dim;
        table[r * 2 * a..(r + 1) * 2 * a].split_at(a)
    }

    /// [`KvTables::get`] for a width `A` known at compile time, which must be `attn_dim`.
    #[inline(always)]
    pub(crate) fn get_fixed<const A: usize>(&self, row: SlotRow) -> (&'a [f32; A], &'a [f32; A]) {
        assert_eq!(A, self.attn_dim, "a fixed-width read of another width's rows");
        let (k, v) = self.get(row);
        (k.try_into().expect("A-long key"), v.try_into().expect("A-long value"))
    }
}

/// Whose folded `[k | v]` row an attention slot reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRow {
    /// A trie node's (`fold_node_kv`).
    Node(u32),
    /// An item's (`fold_item_kv`): an evidence event's item.
    Item(u32),
}

/// One attention slot: its folded key/value row, slot type and `ln(w)`. Slots name rows
/// instead of borrowing them, so a caller's slot buffer outlives any one composer borrow and is
/// reused across requests (no allocation per request).
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub row: SlotRow,
    pub ty: u8,
    pub ln_w: f32,
}

/// Reusable buffers for [`attend`].
#[derive(Default)]
pub struct ComposeScratch {
    logits: Vec<f32>,
    type_logit: Vec<f32>,
    type_mass: Vec<f32>,
    concat: Vec<f32>,
    pub attention: Vec<f32>,
}

/// `exp` for the softmax, written without branches so a slice of logits vectorises. Relative
/// error below 2.6e-7 on the range used (arguments are <= 0 after subtracting the max): 2.54e-7
/// at worst over every f32 in [-87, 0], at x = -26.686005 (checked exhaustively once; the unit
/// test sweeps a grid and that point).
#[inline(always)]
fn exp_slice(v: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 * 2^23 rounds a float below 2^22 in magnitude to an integer (the ulp there is
    // 1) with ties to even, and leaves that integer in the low mantissa bits: `n` as a float
    // and as an integer without `round_ties_even` + `as i32`, whose saturating cast LLVM
    // scalarised lane by lane (7 instructions a lane; this made exp a sixth of the attention).
    // Same `n` as `round_ties_even` on the clamped range, so the same results bit for bit.
    const SHIFTER: f32 = 12_582_912.0;
    for x in v.iter_mut() {
        let xc = x.clamp(-87.0, 88.0);
        let shifted = xc * LOG2E + SHIFTER;
        let n = shifted - SHIFTER;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        // `n` is in [-126, 127] for the clamped range; a NaN input makes `p` NaN whatever the
        // exponent bits are (wrapping arithmetic: garbage bits, never a panic).
        let n_int = (shifted.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
        *x = p * f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    }
}

/// Attention over `slots` plus the null slot for candidate `cand`. Returns the score; when `u`
/// is given, writes the intent vector into it. Leaves the attention weights `[slot, head]`
/// (null slot last) in `scratch.attention`.
// The per-head loops index several arrays by the same head `h` (logits, type logits, biases,
// masses); index form mirrors docs/online-path.md §4 and compiles to the same code.
#[inline(always)]
pub fn attend<K: Simd>(
    kern: K,
    c: &Composer,
    cand: &CandidateView<'_>,
    slots: &[Slot],
    scratch: &mut ComposeScratch,
    u: Option<&mut [f32]>,
) -> f32 {
    // The common head counts and widths get a body whose per-head loops run over `[f32; H]`
    // arrays and whose per-slot kernels are unrolled over `A`-long rows (see [`attend_fixed`]):
    // at the reference shape (4 heads, width 64, ~8 slots) the head arrays took a request from
    // 3.27 M to 2.95 M instructions, and the fixed width attention from ~2.3 k to ~1.4 k
    // instructions per candidate (callgrind, examples/profile_request.rs).
    macro_rules! fixed {
        ($($h:literal, $a:literal);*) => {
            match (c.n_heads, c.attn_dim) {
                $(($h, $a) => attend_fixed::<K, $h, $a>(kern, c, cand, slots, scratch, u),)*
                _ => attend_heads(kern, c, cand, slots, scratch, u),
            }
        };
    }
    fixed!(1, 32; 2, 32; 4, 32; 8, 32; 1, 64; 2, 64; 4, 64; 8, 64; 1, 128; 2, 128; 4, 128; 8, 128)
}

/// `H` consecutive values of `v` from `at` as an array (one bounds check; the per-head loops
/// over it then compile to straight-line SIMD, which indexing a slice per head did not).
#[inline(always)]
fn heads<const H: usize>(v: &[f32], at: usize) -> [f32; H] {
    let mut out = [0.0f32; H];
    out.copy_from_slice(&v[at..at + H]);
    out
}

/// [`attend`] for a head count and attention width known at compile time: the arithmetic of
/// [`attend_heads`], in the same order, so bit-identical results (a raw dot of zero may keep
/// another sign, which neither `exp` nor the max-subtraction can see), with the per-head loops
/// over `[f32; H]` arrays, the softmax passes fused (the running max is taken while the logits
/// are written, each slot's weights are normalised where they are used), and `A`-long rows:
/// the per-slot kernels run fully unrolled with no length checks, and the weighted sum of
/// values stays in registers across slots.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn attend_fixed<K: Simd, const H: usize, const A: usize>(
    kern: K,
    c: &Composer,
    cand: &CandidateView<'_>,
    slots: &[Slot],
    scratch: &mut ComposeScratch,
    u: Option<&mut [f32]>,
) -> f32 {
    let n_types = c.n_types;
    let null_ty = n_types - 1;
    let n = slots.len();
    let w = &c.weights;
    let weight_bias = heads::<H>(&w.weight_bias, 0);
    let kv = c.kv_tables();
    // A local copy: the per-slot loop can keep it in registers (the candidate row is read
    // through raw-pointer loads, which LLVM does not hoist past the logits' stores).
    let q: [f32; A] = cand.q.try_into().expect("a query is attn_dim long");
    let q = &q;

    // The logits are padded to whole SIMD vectors (zeros, never read) so `exp_slice` has no
    // scalar tail; every other pass reads the `(n + 1) * H` real ones. Nothing is zeroed
    // first: every real entry is written before it is read.
    let used = (n + 1) * H;
    scratch.logits.resize(used.next_multiple_of(8), 0.0);
    let (logits, pad) = scratch.logits.split_at_mut(used);
    pad.fill(0.0);
    let mut max = [f32::NEG_INFINITY; H];
    for (s, row) in slots.iter().zip(logits.chunks_exact_mut(H)) {
        let mut l = fold_lanes::<H>(kern.lane_dots(q, kv.get_fixed::<A>(s.row).0));
        let bias = heads::<H>(cand.type_logit, s.ty as usize * H);
        for h in 0..H {
            l[h] += bias[h] + weight_bias[h] * s.ln_w;
            max[h] = max[h].max(l[h]);
        }
        row.copy_from_slice(&l);
    }
    let null = heads::<H>(cand.type_logit, null_ty * H);
    logits[n * H..].copy_from_slice(&null);
    for h in 0..H {
        max[h] = max[h].max(null[h]);
    }
    for row in logits.chunks_exact_mut(H) {
        for h in 0..H {
            row[h] -= max[h];
        }
    }
    exp_slice(&mut scratch.logits);
    scratch.logits.truncate(used);
    let mut sum = [0.0f32; H];
    for row in scratch.logits.chunks_exact(H) {
        for h in 0..H {
            sum[h] += row[h];
        }
    }

    // concat_h = Σ_j att_jh (v_jh + type_value[t_j]_h); type offsets accumulated by type mass.
    let mut concat = [0.0f32; A];
    scratch.type_mass.resize(n_types * H, 0.0);
    scratch.type_mass.fill(0.0);
    for (s, row) in slots.iter().zip(scratch.logits.chunks_exact_mut(H)) {
        for h in 0..H {
            row[h] /= sum[h];
        }
        kern.lane_axpy(&repeat_lanes::<H>(row), kv.get_fixed::<A>(s.row).1, &mut concat);
        // Through arrays: the logits and masses are both f32 slices of `scratch`, so adding
        // in place kept every head's load and store scalar (LLVM assumes they may overlap).
        let at = s.ty as usize * H;
        let mut mass = heads::<H>(&scratch.type_mass, at);
        let att = heads::<H>(row, 0);
        for h in 0..H {
            mass[h] += att[h];
        }
        scratch.type_mass[at..at + H].copy_from_slice(&mass);
    }
    let null_row = &mut scratch.logits[n * H..];
    let null_mass = &mut scratch.type_mass[null_ty * H..null_ty * H + H];
    for h in 0..H {
        null_row[h] /= sum[h];
        null_mass[h] += null_row[h];
    }
    for (m, tv) in type_offsets(c, &scratch.type_mass) {
        kern.lane_axpy(&repeat_lanes::<H>(m), tv.try_into().expect("A-long rows"), &mut concat);
    }
    scratch.concat.clear();
    scratch.concat.extend_from_slice(&concat);
    finish(kern, c, cand, scratch, u)
}

/// [`attend`] for shapes without a compiled body (head counts other than 1, 2, 4 and 8, or
/// widths other than 32, 64 and 128; the others go through [`attend_fixed`]).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn attend_heads<K: Simd>(
    kern: K,
    c: &Composer,
    cand: &CandidateView<'_>,
    slots: &[Slot],
    scratch: &mut ComposeScratch,
    u: Option<&mut [f32]>,
) -> f32 {
    let h_n = c.n_heads;
    let a = c.attn_dim;
    let n_types = c.n_types;
    let null_ty = n_types - 1;
    let s_n = slots.len() + 1;
    let w = &c.weights;
    let q = cand.q;
    let kv = c.kv_tables();

    scratch.logits.clear();
    scratch.logits.resize(s_n * h_n, 0.0);
    for (j, s) in slots.iter().enumerate() {
        let row = &mut scratch.logits[j * h_n..(j + 1) * h_n];
        kern.head_dots(q, kv.get(s.row).0, h_n, row);
        for h in 0..h_n {
            row[h] += cand.type_logit[s.ty as usize * h_n + h] + w.weight_bias[h] * s.ln_w;
        }
    }
    let null_row = slots.len() * h_n;
    scratch.logits[null_row..null_row + h_n].copy_from_slice(&cand.type_logit[null_ty * h_n..(null_ty + 1) * h_n]);

    // Softmax over slots, per head: subtract each head's max, exponentiate all at once.
    scratch.type_logit.clear();
    scratch.type_logit.resize(h_n, f32::NEG_INFINITY);
    for row in scratch.logits.chunks_exact(h_n) {
        for h in 0..h_n {
            scratch.type_logit[h] = scratch.type_logit[h].max(row[h]);
        }
    }
    for row in scratch.logits.chunks_exact_mut(h_n) {
        for h in 0..h_n {
            row[h] -= scratch.type_logit[h];
        }
    }
    exp_slice(&mut scratch.logits);
    scratch.type_logit.iter_mut().for_each(|z| *z = 0.0);
    for row in scratch.logits.chunks_exact(h_n) {
        for h in 0..h_n {
            scratch.type_logit[h] += row[h];
        }
    }
    for row in scratch.logits.chunks_exact_mut(h_n) {
        for h in 0..h_n {
            row[h] /= scratch.type_logit[h];
        }
    }

    // concat_h = Σ_j att_jh (v_jh + type_value[t_j]_h); type offsets accumulated by type mass.
    scratch.concat.clear();
    scratch.concat.resize(a, 0.0);
    scratch.type_mass.clear();
    scratch.type_mass.resize(n_types * h_n, 0.0);
    for (j, s) in slots.iter().enumerate() {
        let att = &scratch.logits[j * h_n..(j + 1) * h_n];
        kern.head_axpy(att, kv.get(s.row).1, &mut scratch.concat);
        for h in 0..h_n {
            scratch.type_mass[s.ty as usize * h_n + h] += att[h];
        }
    }
    for h in 0..h_n {
        scratch.type_mass[null_ty * h_n + h] += scratch.logits[null_row + h];
    }
    let ComposeScratch { type_mass, concat, .. } = scratch;
    for (m, tv) in type_offsets(c, type_mass) {
        kern.head_axpy(m, tv, concat);
    }
    finish(kern, c, cand, scratch, u)
}

/// Each slot type that has attention mass, as `(mass per head, type value row)` (`type_mass`
/// is `[type, head]`): both attention bodies add these offsets to their weighted values, each
/// with its own kernel, in this order. An iterator rather than a callback: a closure is a
/// function of its own, and one holding AVX2 kernels compiled, where LLVM did not inline it,
/// without AVX2 (every intrinsic a call: +18 % through the Python module's build).
#[inline(always)]
fn type_offsets<'a>(c: &'a Composer, type_mass: &'a [f32]) -> impl Iterator<Item = (&'a [f32], &'a [f32])> {
    // Zipped chunks rather than indexing per type: no bounds checks in the loop.
    type_mass
        .chunks_exact(c.n_heads)
        .zip(c.type_value.chunks_exact(c.attn_dim))
        .take(c.n_types)
        .filter(|(m, _)| m.iter().any(|&v| v != 0.0))
}

/// The end of [`attend`] once `scratch` holds the attention weights and `concat` the weighted
/// values with the type offsets: writes the intent vector into `u` when given, moves the
/// weights to `scratch.attention`, returns the score.
#[inline(always)]
fn finish<K: Simd>(kern: K, c: &Composer, cand: &CandidateView<'_>, scratch: &mut ComposeScratch, u: Option<&mut [f32]>) -> f32 {
    if let Some(u) = u {
        // u = concat @ wo + bo (wo's rows are in the interleaved basis, like concat)
        u.copy_from_slice(&c.weights.bo);
        for (i, &x) in scratch.concat.iter().enumerate() {
            kern.axpy(x, &c.wo[i * c.dim..(i + 1) * c.dim], u);
        }
    }
    std::mem::swap(&mut scratch.attention, &mut scratch.logits);
    kern.dot_f32(cand.r, &scratch.concat) + cand.c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Portable;
    use crate::testing::{Composition, Rng};

    /// [`attend_fixed`] against [`attend_heads`] at one compiled shape: score, intent vector and
    /// attention weights bit for bit, with no slots, with a type that has no mass, and with
    /// many slots of every type.
    fn compiled_body_is_the_general_one<K: Simd, const H: usize, const A: usize>(kern: K) {
        let (d, max_depth) = (16, 3);
        let comp = Composition::random(d, A, H, max_depth, (H * 1000 + A) as u64);
        let mut rng = Rng::new(7);
        let mut vectors = |n: usize| (0..n * d).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
        let (nodes, items, x) = (vectors(7), vectors(5), vectors(1));
        let c = Composer::fold(comp.weights(), &nodes, &items, d, H);
        let mut row = vec![0.0f32; c.candidate_row_len()];
        c.fill_candidate_row(&x, &mut row);
        let cand = c.view(&row);
        let evidence_ty = (c.n_types - 2) as u8;
        let slot = |row, ty, ln_w| Slot { row, ty, ln_w };
        let mut many = Vec::new();
        for k in 0..12u32 {
            let ty = (k % (evidence_ty as u32 + 1)) as u8;
            let row = if ty == evidence_ty { SlotRow::Item(k % 5) } else { SlotRow::Node(k % 7) };
            many.push(slot(row, ty, -(rng.exponential() as f32)));
        }
        let cases = [
            vec![],
            // Type 2 has no slot: its offset is skipped in both bodies.
            vec![
                slot(SlotRow::Node(0), 0, -0.5),
                slot(SlotRow::Node(1), 1, -1.5),
                slot(SlotRow::Node(2), 1, -0.1),
                slot(SlotRow::Item(3), evidence_ty, -2.0),
            ],
            many,
        ];
        for slots in &cases {
            let (mut fixed, mut general) = (ComposeScratch::default(), ComposeScratch::default());
            let (mut u_fixed, mut u_general) = (vec![0.0f32; d], vec![0.0f32; d]);
            let a = attend_fixed::<K, H, A>(kern, &c, &cand, slots, &mut fixed, Some(&mut u_fixed));
            let b = attend_heads(kern, &c, &cand, slots, &mut general, Some(&mut u_general));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let shape = format!("H {H} A {A} slots {}", slots.len());
            assert_eq!(a.to_bits(), b.to_bits(), "score, {shape}");
            assert_eq!(bits(&u_fixed), bits(&u_general), "intent vector, {shape}");
            assert_eq!(bits(&fixed.attention), bits(&general.attention), "attention, {shape}");
            // The score-only path (no intent vector) too.
            let a = attend_fixed::<K, H, A>(kern, &c, &cand, slots, &mut fixed, None);
            assert_eq!(a.to_bits(), b.to_bits(), "score without the vector, {shape}");
        }
    }

    fn compiled_bodies_are_the_general_one<K: Simd>(kern: K) {
        macro_rules! shapes {
            ($($h:literal, $a:literal);*) => {
                $(compiled_body_is_the_general_one::<K, $h, $a>(kern);)*
            };
        }
        shapes!(1, 32; 2, 32; 4, 32; 8, 32; 1, 64; 2, 64; 4, 64; 8, 64; 1, 128; 2, 128; 4, 128; 8, 128);
    }

    #[test]
    fn every_compiled_attention_body_gives_the_general_bodys_bits() {
        compiled_bodies_are_the_general_one(Portable);
        #[cfg(target_arch = "x86_64")]
        if let Some(kern) = crate::kernels::Avx2::detect() {
            compiled_bodies_are_the_general_one(kern);
        }
    }

    /// The formula before the shifter trick (`round_ties_even` and a saturating cast): the
    /// softmax's arithmetic must not change, so the two agree bit for bit.
    fn exp_rounded(x: f32) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        let xc = x.clamp(-87.0, 88.0);
        let n = (xc * LOG2E).round_ties_even();
        let r = (xc - n * 0.693_145_75) - n * 1.428_606_8e-6;
        let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        p * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }

    #[test]
    fn exp_slice_is_the_rounded_formula_bit_for_bit_and_close_to_exp() {
        // A dense sweep of the softmax's range (<= 0), the clamp's ends and beyond, and points
        // near the rounding's ties (x * log2 e = k + 1/2, as close as f32 gets).
        let mut xs: Vec<f32> = (0..=200_000).map(|i| -100.0 + i as f32 * 1e-3).collect();
        xs.extend((-130..130).map(|k| (k as f32 + 0.5) / std::f32::consts::LOG2_E));
        xs.extend([-87.0, 88.0, -0.0, 0.0, f32::MIN, f32::MAX, f32::NEG_INFINITY, f32::INFINITY]);
        xs.push(-26.686_005); // the worst relative error over every f32 in [-87, 0]
        let mut got = xs.clone();
        exp_slice(&mut got);
        let mut worst = 0.0f64;
        for (&x, &y) in xs.iter().zip(&got) {
            assert_eq!(y.to_bits(), exp_rounded(x).to_bits(), "exp({x})");
            if (-87.0..=0.0).contains(&x) {
                let want = (x as f64).exp();
                worst = worst.max(((y as f64 - want) / want).abs());
            }
        }
        assert!(worst < 2.6e-7, "relative error {worst}");
        // NaN in, NaN out (and no panic from the exponent arithmetic).
        let mut nan = [f32::NAN; 9];
        exp_slice(&mut nan);
        assert!(nan.iter().all(|v| v.is_nan()));
    }
}
