//! Composition (docs/online-path.md §4): multi-head attention with the candidate as query over
//! chain nodes, evidence events and a null slot, then the output projection and score head.
//!
//! Node and item projections never change online, so they are folded once at load time:
//! the hot path is dot products and weighted sums over `attn_dim`-sized rows.

use rayon::prelude::*;

use crate::kernels::{axpy, dot_f32, matmul_rows};
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

/// Folded projections: queries of items (pre-scaled by `1/sqrt(dk)`), keys and values of nodes
/// and items.
#[derive(Debug)]
pub struct Composer {
    pub weights: ComposeWeights,
    pub dim: usize,
    pub attn_dim: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// `1/sqrt(dk)`.
    pub scale: f32,
    pub item_q: Vec<f32>,
    pub item_k: Vec<f32>,
    pub item_v: Vec<f32>,
    pub node_k: Vec<f32>,
    pub node_v: Vec<f32>,
}

fn fold(rows: &[f32], d: usize, w: &[f32], a: usize, scale: f32) -> Vec<f32> {
    let n = rows.len() / d;
    let mut out = vec![0.0f32; n * a];
    const BLOCK: usize = 1024;
    out.par_chunks_mut(BLOCK * a)
        .zip(rows.par_chunks(BLOCK * d))
        .for_each(|(o, r)| matmul_rows(r, d, w, a, scale, o));
    out
}

impl Composer {
    pub fn new(
        weights: ComposeWeights,
        node_vectors: &[f32],
        item_vectors: &[f32],
        dim: usize,
        n_heads: usize,
    ) -> Self {
        let attn_dim = weights.wq.shape()[1];
        let head_dim = attn_dim / n_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let item_q = fold(item_vectors, dim, &weights.wq, attn_dim, scale);
        let item_k = fold(item_vectors, dim, &weights.wk, attn_dim, 1.0);
        let item_v = fold(item_vectors, dim, &weights.wv, attn_dim, 1.0);
        let node_k = fold(node_vectors, dim, &weights.wk, attn_dim, 1.0);
        let node_v = fold(node_vectors, dim, &weights.wv, attn_dim, 1.0);
        Composer {
            weights,
            dim,
            attn_dim,
            n_heads,
            head_dim,
            scale,
            item_q,
            item_k,
            item_v,
            node_k,
            node_v,
        }
    }

    /// Query of an arbitrary candidate vector (items in the bundle use the folded `item_q`).
    pub fn query_of(&self, x: &[f32], out: &mut [f32]) {
        matmul_rows(x, self.dim, &self.weights.wq, self.attn_dim, self.scale, out);
    }

    pub fn n_types(&self) -> usize {
        self.weights.type_key.shape()[0]
    }

    #[inline(always)]
    pub fn node_kv(&self, node: u32) -> (&[f32], &[f32]) {
        let a = self.attn_dim;
        let r = node as usize * a..(node as usize + 1) * a;
        (&self.node_k[r.clone()], &self.node_v[r])
    }

    #[inline(always)]
    pub fn item_kv(&self, item: u32) -> (&[f32], &[f32]) {
        let a = self.attn_dim;
        let r = item as usize * a..(item as usize + 1) * a;
        (&self.item_k[r.clone()], &self.item_v[r])
    }

    #[inline(always)]
    pub fn item_query(&self, item: u32) -> &[f32] {
        let a = self.attn_dim;
        &self.item_q[item as usize * a..(item as usize + 1) * a]
    }
}

/// One attention slot: folded key and value rows, slot type and `ln(w)`.
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    pub key: &'a [f32],
    pub value: &'a [f32],
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

/// Attention over `slots` plus the null slot for query `q`; writes the intent vector into `u`
/// and leaves the attention weights `[slot, head]` (null slot last) in `scratch.attention`.
#[inline(always)]
pub fn attend(c: &Composer, q: &[f32], slots: &[Slot<'_>], scratch: &mut ComposeScratch, u: &mut [f32]) {
    let (h_n, dk, a) = (c.n_heads, c.head_dim, c.attn_dim);
    let n_types = c.n_types();
    let null_ty = n_types - 1;
    let s_n = slots.len() + 1;
    let w = &c.weights;

    // q · type_key[t], per type and head: the type offset's share of every logit.
    scratch.type_logit.clear();
    for t in 0..n_types {
        let tk = &w.type_key[t * a..(t + 1) * a];
        for h in 0..h_n {
            scratch.type_logit.push(dot_f32(&q[h * dk..(h + 1) * dk], &tk[h * dk..(h + 1) * dk]));
        }
    }
    scratch.logits.clear();
    scratch.logits.resize(s_n * h_n, 0.0);
    for (j, s) in slots.iter().enumerate() {
        let row = &mut scratch.logits[j * h_n..(j + 1) * h_n];
        for h in 0..h_n {
            let r = h * dk..(h + 1) * dk;
            row[h] = dot_f32(&q[r.clone()], &s.key[r])
                + scratch.type_logit[s.ty as usize * h_n + h]
                + w.weight_bias[h] * s.ln_w;
        }
    }
    let null_row = slots.len() * h_n;
    scratch.logits[null_row..null_row + h_n].copy_from_slice(&scratch.type_logit[null_ty * h_n..(null_ty + 1) * h_n]);

    // Softmax over slots, per head.
    for h in 0..h_n {
        let mut m = f32::NEG_INFINITY;
        for j in 0..s_n {
            m = m.max(scratch.logits[j * h_n + h]);
        }
        let mut z = 0.0f32;
        for j in 0..s_n {
            let e = (scratch.logits[j * h_n + h] - m).exp();
            scratch.logits[j * h_n + h] = e;
            z += e;
        }
        let inv = 1.0 / z;
        for j in 0..s_n {
            scratch.logits[j * h_n + h] *= inv;
        }
    }

    // o_h = Σ_j att_jh (v_jh + type_value[t_j]_h); type offsets accumulated by type mass.
    scratch.concat.clear();
    scratch.concat.resize(a, 0.0);
    scratch.type_mass.clear();
    scratch.type_mass.resize(n_types * h_n, 0.0);
    for (j, s) in slots.iter().enumerate() {
        for h in 0..h_n {
            let p = scratch.logits[j * h_n + h];
            let r = h * dk..(h + 1) * dk;
            axpy(p, &s.value[r.clone()], &mut scratch.concat[r]);
            scratch.type_mass[s.ty as usize * h_n + h] += p;
        }
    }
    for h in 0..h_n {
        scratch.type_mass[null_ty * h_n + h] += scratch.logits[null_row + h];
    }
    for t in 0..n_types {
        let tv = &w.type_value[t * a..(t + 1) * a];
        for h in 0..h_n {
            let m = scratch.type_mass[t * h_n + h];
            if m != 0.0 {
                let r = h * dk..(h + 1) * dk;
                axpy(m, &tv[r.clone()], &mut scratch.concat[r]);
            }
        }
    }

    // u = concat @ wo + bo
    u.copy_from_slice(&w.bo);
    for (i, &x) in scratch.concat.iter().enumerate() {
        axpy(x, &w.wo[i * c.dim..(i + 1) * c.dim], u);
    }
    std::mem::swap(&mut scratch.attention, &mut scratch.logits);
}

/// `score_w_out · u + score_w_inter · (u ⊙ x) + score_bias`.
#[inline(always)]
pub fn score_head(c: &Composer, u: &[f32], x: &[f32]) -> f32 {
    let w = &c.weights;
    let mut s = dot_f32(&w.score_w_out, u) + w.score_bias[0];
    let mut acc = 0.0f32;
    for i in 0..u.len() {
        acc += w.score_w_inter[i] * u[i] * x[i];
    }
    s += acc;
    s
}
