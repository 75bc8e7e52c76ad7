//! Composition inputs as padded arrays, for training the composition outside the engine.
//!
//! Training (torch) must see exactly the chains and evidence that serving composes, or the
//! trained weights meet different inputs online (train/serve skew). So the engine itself runs
//! the tree build and the target-aware walk for every (user, candidate) of a training batch,
//! and hands back the attention slots of `docs/online-path.md` §4 — chain nodes, then evidence,
//! in the engine's order — as fixed-width rows that a framework can gather and batch:
//!
//! * `ids`: node id (chain slots) or item id (evidence slots), `-1` on padding;
//! * `types`: the slot type (`depth - 1` for nodes, `max_depth` for evidence), [`PAD_TYPE`] on
//!   padding;
//! * `ln_w`: `ln(w)` of the slot as the engine uses it (f32), `0` on padding.
//!
//! The null slot is not stored: it is the same for every row (type `max_depth + 1`, `ln w = 0`,
//! zero vector) and the trainer appends it.

use rayon::prelude::*;

use crate::compose::SlotRow;
use crate::engine::KernelTask;
use crate::engine::{Candidates, Engine, Histories, Scratch};
use crate::error::{Error, Result};
use crate::kernels::Simd;
use crate::tree::UserTree;

/// `types` value of a padding slot.
pub const PAD_TYPE: u8 = u8::MAX;

/// Output buffers of [`Engine::slots_batch`], each `[users, candidates, width]` row-major.
#[derive(Debug)]
pub struct SlotsOut<'a> {
    pub ids: &'a mut [i32],
    pub types: &'a mut [u8],
    pub ln_w: &'a mut [f32],
}

/// The slots of all tree nodes, by weight (target-independent), for the "no target-aware
/// retrieval" ablation. `[users, width]` each.
#[derive(Debug)]
pub struct TreeSlotsOut<'a> {
    pub ids: &'a mut [i32],
    pub ln_w: &'a mut [f32],
}

impl Engine {
    /// Most slots one candidate can have: every selected chain at full depth (chain nodes are
    /// deduplicated, so usually fewer) plus the evidence cap.
    pub fn slot_width(&self) -> usize {
        let c = self.config();
        c.max_chains * c.max_chain_depth + c.max_evidence
    }

    /// Builds each user's tree and writes the attention slots of every candidate in its row of
    /// `candidates` (`[U, n_cands]`), in parallel over users.
    pub fn slots_batch(&self, h: Histories<'_>, candidates: &[u32], n_cands: usize, out: SlotsOut<'_>) -> Result<()> {
        self.check_histories(&h)?;
        let u = h.n_users();
        if candidates.len() != u * n_cands {
            return Err(Error::Input(format!("candidates must be [{u}, {n_cands}], got {} values", candidates.len())));
        }
        self.check_candidates(&Candidates::Items(candidates))?;
        let per = n_cands * self.slot_width();
        for (name, len) in [("ids", out.ids.len()), ("types", out.types.len()), ("ln_w", out.ln_w.len())] {
            if len != u * per {
                return Err(Error::Input(format!("{name} buffer has {len} values, expected {}", u * per)));
            }
        }
        if per == 0 {
            return Ok(());
        }
        out.ids.par_chunks_mut(per).zip(out.types.par_chunks_mut(per)).zip(out.ln_w.par_chunks_mut(per)).enumerate().try_for_each_init(
            Scratch::default,
            |s, (user, ((ids, types), ln_w))| {
                let (a, b) = (h.offsets[user] as usize, h.offsets[user + 1] as usize);
                let tree = self.build_tree(&h.items[a..b], &h.behaviours[a..b], &h.timestamps[a..b])?;
                let cands = &candidates[user * n_cands..(user + 1) * n_cands];
                self.fill_slots(&tree, cands, SlotsOut { ids, types, ln_w }, s);
                Ok(())
            },
        )
    }

    /// Per user, its tree nodes sorted by weight (descending, ties by node id), at most `width`.
    pub fn tree_slots_batch(&self, h: Histories<'_>, width: usize, out: TreeSlotsOut<'_>) -> Result<()> {
        self.check_histories(&h)?;
        let u = h.n_users();
        for (name, len) in [("ids", out.ids.len()), ("ln_w", out.ln_w.len())] {
            if len != u * width {
                return Err(Error::Input(format!("{name} buffer has {len} values, expected {}", u * width)));
            }
        }
        if width == 0 {
            return Ok(());
        }
        out.ids.par_chunks_mut(width).zip(out.ln_w.par_chunks_mut(width)).enumerate().try_for_each(|(user, (ids, ln_w))| {
            let (a, b) = (h.offsets[user] as usize, h.offsets[user + 1] as usize);
            let tree = self.build_tree(&h.items[a..b], &h.behaviours[a..b], &h.timestamps[a..b])?;
            let mut nodes: Vec<(f64, u32)> =
                (0..tree.nodes().len() as u32).map(|i| (tree.weight(i), tree.nodes()[i as usize].node)).collect();
            nodes.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            ids.fill(-1);
            ln_w.fill(0.0);
            for (k, &(w, node)) in nodes.iter().take(width).enumerate() {
                ids[k] = node as i32;
                ln_w[k] = w.ln() as f32;
            }
            Ok(())
        })
    }

    fn fill_slots(&self, tree: &UserTree, cands: &[u32], out: SlotsOut<'_>, s: &mut Scratch) {
        struct FillSlots<'e, 'a> {
            engine: &'e Engine,
            tree: &'a UserTree,
            cands: &'a [u32],
            out: SlotsOut<'a>,
            s: &'a mut Scratch,
        }
        impl KernelTask for FillSlots<'_, '_> {
            type Output = ();
            #[inline(always)]
            fn run<K: Simd>(self, kern: K) {
                self.engine.fill_slots_impl(kern, self.tree, self.cands, self.out, self.s)
            }
        }
        self.with_kernels(FillSlots { engine: self, tree, cands, out, s })
    }

    /// The same walk as a scoring request (same kernels), writing slots instead of composing.
    #[inline(always)]
    fn fill_slots_impl<K: Simd>(&self, kern: K, tree: &UserTree, cands: &[u32], out: SlotsOut<'_>, s: &mut Scratch) {
        let width = self.slot_width();
        self.prepare_view(tree, s);
        out.ids.fill(-1);
        out.types.fill(PAD_TYPE);
        out.ln_w.fill(0.0);
        for (k, &item) in cands.iter().enumerate() {
            let c = self.composer();
            let cand = c.view(c.item_row(item));
            self.walk_for(kern, tree, &cand, s);
            let row = k * width;
            let mut j = row;
            for slot in s.walked_slots() {
                out.ids[j] = match slot.row {
                    SlotRow::Node(id) | SlotRow::Item(id) => id as i32,
                };
                out.types[j] = slot.ty;
                out.ln_w[j] = slot.ln_w;
                j += 1;
            }
            debug_assert!(j <= row + width);
        }
    }
}
