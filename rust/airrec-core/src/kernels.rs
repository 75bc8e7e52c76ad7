//! Small dense kernels for the hot path.
//!
//! Written with eight independent accumulators so that LLVM vectorises them without fast-math;
//! `#[inline(always)]` lets them pick up AVX2 when inlined into a `#[target_feature]` caller
//! (see `engine::dispatch`).

#[inline(always)]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ta.iter().zip(tb).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `out[k] = rows[idx[k]] · x` for row-major `rows` `[n, d]`: a matrix-vector product over a
/// gathered subset of rows (the evidence events a candidate's chains reach). Each row gets
/// [`row_dot_f64`]'s arithmetic, as in [`gemv_f64`].
#[inline(always)]
pub fn gather_gemv_f64(rows: &[f64], d: usize, idx: &[u32], x: &[f64], out: &mut [f64]) {
    for (o, &r) in out.iter_mut().zip(idx) {
        let r = r as usize;
        *o = row_dot_f64(&rows[r * d..(r + 1) * d], &x[..d]);
    }
}

/// One row of [`gemv_f64`] on its own, with the arithmetic a row gets inside a block of four:
/// four lanes summed in `j` order, then `(l0 + l2) + (l1 + l3)`, then the tail in order. A row
/// therefore has the same similarity wherever it sits in a product (a block, the tail, alone),
/// which explanations rely on: they recompute a chain node's similarity by itself.
#[inline(always)]
fn row_dot_f64(row: &[f64], x: &[f64]) -> f64 {
    let d = x.len();
    let full = d / 4 * 4;
    let mut acc = [0.0f64; 4];
    for (xv, a) in x[..full].chunks_exact(4).zip(row[..full].chunks_exact(4)) {
        for l in 0..4 {
            acc[l] += a[l] * xv[l];
        }
    }
    let mut t = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for i in full..d {
        t += row[i] * x[i];
    }
    t
}

/// `out[r] = rows[r] · x` for row-major `rows` `[n, d]`, four rows at a time so each chunk of
/// `x` is loaded once per four dot products.
#[inline(always)]
pub fn gemv_f64(rows: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
    let n = out.len();
    let x = &x[..d];
    let full = d / 4 * 4;
    let mut blocks = rows[..n / 4 * 4 * d].chunks_exact(4 * d);
    for (blk, block) in (&mut blocks).enumerate() {
        let (r0, rest) = block.split_at(d);
        let (r1, rest) = rest.split_at(d);
        let (r2, r3) = rest.split_at(d);
        let mut acc = [[0.0f64; 4]; 4];
        for ((((xv, a), b), c), e) in x[..full]
            .chunks_exact(4)
            .zip(r0[..full].chunks_exact(4))
            .zip(r1[..full].chunks_exact(4))
            .zip(r2[..full].chunks_exact(4))
            .zip(r3[..full].chunks_exact(4))
        {
            for l in 0..4 {
                acc[0][l] += a[l] * xv[l];
                acc[1][l] += b[l] * xv[l];
                acc[2][l] += c[l] * xv[l];
                acc[3][l] += e[l] * xv[l];
            }
        }
        for (k, row) in [r0, r1, r2, r3].iter().enumerate() {
            let mut t = (acc[k][0] + acc[k][2]) + (acc[k][1] + acc[k][3]);
            for i in full..d {
                t += row[i] * x[i];
            }
            out[blk * 4 + k] = t;
        }
    }
    // The last rows one by one, with a block row's arithmetic (not another lane layout): a
    // row's similarity must not depend on its position in the product.
    for i in n / 4 * 4..n {
        out[i] = row_dot_f64(&rows[i * d..(i + 1) * d], x);
    }
}

/// Per-head dot products of two head-interleaved vectors: `out[h] = Σ_j q[j*H+h] k[j*H+h]`.
#[inline(always)]
pub fn head_dots(q: &[f32], k: &[f32], h_n: usize, out: &mut [f32]) {
    let a = q.len();
    if 8 % h_n == 0 && a % 8 == 0 {
        let mut acc = [0.0f32; 8];
        for (qc, kc) in q.chunks_exact(8).zip(k[..a].chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += qc[l] * kc[l];
            }
        }
        out[..h_n].iter_mut().for_each(|o| *o = 0.0);
        for l in 0..8 {
            out[l % h_n] += acc[l];
        }
    } else {
        out[..h_n].iter_mut().for_each(|o| *o = 0.0);
        for i in 0..a {
            out[i % h_n] += q[i] * k[i];
        }
    }
}

/// `y[j*H+h] += w[h] * x[j*H+h]` for head-interleaved vectors.
#[inline(always)]
pub fn head_axpy(w: &[f32], x: &[f32], y: &mut [f32]) {
    let h_n = w.len();
    let a = y.len();
    if 8 % h_n == 0 && a % 8 == 0 {
        let mut w8 = [0.0f32; 8];
        for l in 0..8 {
            w8[l] = w[l % h_n];
        }
        for (yc, xc) in y.chunks_exact_mut(8).zip(x[..a].chunks_exact(8)) {
            for l in 0..8 {
                yc[l] += w8[l] * xc[l];
            }
        }
    } else {
        for i in 0..a {
            y[i] += w[i % h_n] * x[i];
        }
    }
}

/// [`head_dots`] for a length known at compile time, before the heads are folded: lane `l`
/// of the result sums `q[8i + l] k[8i + l]` over `i` (multiply, then add, in `i` order), so
/// [`fold_lanes`] of it is what [`head_dots`] gives. The loop has a constant trip count: no
/// length checks or remainder per call (attention calls it once per slot).
#[inline(always)]
pub fn lane_dots<const A: usize>(q: &[f32; A], k: &[f32; A]) -> [f32; 8] {
    const { assert!(A % 8 == 0) };
    let mut acc = [0.0f32; 8];
    for (qc, kc) in q.chunks_exact(8).zip(k.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += qc[l] * kc[l];
        }
    }
    acc
}

/// `y[8i + l] += w[l] * x[8i + l]`: [`head_axpy`] with the head weights already repeated over
/// the eight lanes ([`repeat_lanes`]) and a length known at compile time.
#[inline(always)]
pub fn lane_axpy<const A: usize>(w: &[f32; 8], x: &[f32; A], y: &mut [f32; A]) {
    const { assert!(A % 8 == 0) };
    for (yc, xc) in y.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
        for l in 0..8 {
            yc[l] += w[l] * xc[l];
        }
    }
}

/// Per-head sums of [`lane_dots`]' lanes for `H` heads (`H` divides 8; lane `l` is head
/// `l % H`), added in lane order as [`head_dots`] adds them.
#[inline(always)]
pub fn fold_lanes<const H: usize>(lanes: [f32; 8]) -> [f32; H] {
    const { assert!(H > 0 && 8 % H == 0) };
    let mut out = [0.0f32; H];
    if H == 8 {
        out.copy_from_slice(&lanes);
    } else {
        for (l, v) in lanes.iter().enumerate() {
            out[l % H] += v;
        }
    }
    out
}

/// `H` head weights repeated over eight lanes (lane `l` gets head `l % H`), for [`lane_axpy`].
#[inline(always)]
pub fn repeat_lanes<const H: usize>(w: &[f32]) -> [f32; 8] {
    let w: &[f32; H] = w[..H].try_into().expect("H head weights");
    std::array::from_fn(|l| w[l % H])
}

mod sealed {
    /// Only this module's kernel sets implement [`super::Simd`].
    pub trait Sealed {}
}

/// A set of hot-path kernels, passed by value: [`Portable`] everywhere, [`Avx2`] on x86-64
/// CPUs with AVX2 and FMA. A value of the type is the proof that its instructions exist on
/// this CPU (an [`Avx2`] is only made by [`Avx2::detect`]), so the methods are safe to call;
/// the trait is sealed so no other type can claim that. Results agree to float rounding.
pub trait Simd: Copy + sealed::Sealed {
    fn gemv_f64(self, rows: &[f64], d: usize, x: &[f64], out: &mut [f64]);
    fn gather_gemv_f64(self, rows: &[f64], d: usize, idx: &[u32], x: &[f64], out: &mut [f64]);
    fn head_dots(self, q: &[f32], k: &[f32], h_n: usize, out: &mut [f32]);
    fn head_axpy(self, w: &[f32], x: &[f32], y: &mut [f32]);
    fn axpy(self, alpha: f32, x: &[f32], y: &mut [f32]);
    /// [`dot_f32`]'s arithmetic (eight lanes, multiply then add, the same final sums), so
    /// both kernel sets give the same bits.
    fn dot_f32(self, a: &[f32], b: &[f32]) -> f32;
    /// [`lane_dots`] (the AVX2 set with fused multiply-adds, as its [`Simd::head_dots`]).
    fn lane_dots<const A: usize>(self, q: &[f32; A], k: &[f32; A]) -> [f32; 8];
    /// [`lane_axpy`] (the AVX2 set with fused multiply-adds, as its [`Simd::head_axpy`]).
    fn lane_axpy<const A: usize>(self, w: &[f32; 8], x: &[f32; A], y: &mut [f32; A]);
}

/// Plain Rust kernels (auto-vectorised), valid on every CPU.
#[derive(Clone, Copy, Debug)]
pub struct Portable;

impl sealed::Sealed for Portable {}

impl Simd for Portable {
    #[inline(always)]
    fn gemv_f64(self, rows: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
        gemv_f64(rows, d, x, out)
    }
    #[inline(always)]
    fn gather_gemv_f64(self, rows: &[f64], d: usize, idx: &[u32], x: &[f64], out: &mut [f64]) {
        gather_gemv_f64(rows, d, idx, x, out)
    }
    #[inline(always)]
    fn head_dots(self, q: &[f32], k: &[f32], h_n: usize, out: &mut [f32]) {
        head_dots(q, k, h_n, out)
    }
    #[inline(always)]
    fn head_axpy(self, w: &[f32], x: &[f32], y: &mut [f32]) {
        head_axpy(w, x, y)
    }
    #[inline(always)]
    fn axpy(self, alpha: f32, x: &[f32], y: &mut [f32]) {
        axpy(alpha, x, y)
    }
    #[inline(always)]
    fn dot_f32(self, a: &[f32], b: &[f32]) -> f32 {
        dot_f32(a, b)
    }
    #[inline(always)]
    fn lane_dots<const A: usize>(self, q: &[f32; A], k: &[f32; A]) -> [f32; 8] {
        lane_dots(q, k)
    }
    #[inline(always)]
    fn lane_axpy<const A: usize>(self, w: &[f32; 8], x: &[f32; A], y: &mut [f32; A]) {
        lane_axpy(w, x, y)
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;

/// AVX2 + FMA versions, written with intrinsics because the auto-vectoriser keeps these
/// short, fixed-shape loops in 128-bit or scalar code. They carry no `#[target_feature]` of
/// their own (it forbids `#[inline(always)]`): the engine calls them from functions that
/// enable AVX2 and FMA (`engine::run_avx2`), so the intrinsics inline there. Every load and
/// store is unaligned (`loadu`/`storeu`): slices of `f32`/`f64` are only 4/8-byte aligned.
///
/// Safety contract of every `unsafe fn` here: the CPU supports AVX2 and FMA (an [`Avx2`]
/// value exists). Memory safety is by the length checks in each function, or for the
/// fixed-width ones (`lane_*`) by their array types: every access is inside an `A`-long array,
/// `A` a multiple of 8 (a compile-time assertion).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{sealed, Simd};

    /// The AVX2 + FMA kernels; a value exists only on a CPU that has both.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx2 {
        _detected: (),
    }

    impl Avx2 {
        /// The AVX2 kernels, if this CPU supports AVX2 and FMA.
        pub fn detect() -> Option<Avx2> {
            (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")).then_some(Avx2 { _detected: () })
        }
    }

    impl sealed::Sealed for Avx2 {}

    // SAFETY (for the intrinsics in every function below): the caller guarantees AVX2 and
    // FMA (module contract); pointer arithmetic stays within the slices as each function's
    // length checks (or array types) establish, and all accesses are unaligned loads/stores.
    #[inline(always)]
    unsafe fn hsum_pd(v: __m256d) -> f64 {
        let lo = _mm256_castpd256_pd128(v);
        let hi = _mm256_extractf128_pd(v, 1);
        let s = _mm_add_pd(lo, hi);
        let h = _mm_unpackhi_pd(s, s);
        _mm_cvtsd_f64(_mm_add_sd(s, h))
    }

    /// Dot products of `N` `d`-long f64 rows with `x`, each row with its own accumulator that
    /// sums four lanes in `j` order, then the lanes, then the tail: every row gets the same
    /// arithmetic whatever `N` it is computed in (blocks of four, then pairs and singles for a
    /// short tail, which most of the walk's child lists are). Beyond the module contract: every
    /// `p[k]` and `xp` is valid for `d` reads (the callers check the slice lengths and row
    /// indices before forming the pointers).
    #[inline(always)]
    unsafe fn dots<const N: usize>(p: [*const f64; N], xp: *const f64, d: usize) -> [f64; N] {
        let full = d / 4 * 4;
        let mut acc = [_mm256_setzero_pd(); N];
        let mut j = 0;
        macro_rules! step {
            ($j:expr) => {
                let xv = _mm256_loadu_pd(xp.add($j));
                for k in 0..N {
                    acc[k] = _mm256_fmadd_pd(_mm256_loadu_pd(p[k].add($j)), xv, acc[k]);
                }
            };
        }
        // Four steps per iteration (fewer loop branches: ~1 % of a request at d = 64); each
        // accumulator still sums its lanes in `j` order.
        while j + 16 <= full {
            step!(j);
            step!(j + 4);
            step!(j + 8);
            step!(j + 12);
            j += 16;
        }
        while j < full {
            step!(j);
            j += 4;
        }
        let mut t = [0.0; N];
        if let Ok(t4) = <&mut [f64; 4]>::try_from(&mut t[..]) {
            // Four rows' `hsum_pd` at once, with its additions: `(l0 + l2, l1 + l3)` of rows 0
            // and 1, then of rows 2 and 3, then `hadd` sums each pair (giving rows 0, 2, 1, 3).
            // (A macro, not a closure: a closure is a function of its own, without AVX2.)
            macro_rules! pair {
                ($a:expr, $b:expr) => {
                    _mm256_add_pd(_mm256_permute2f128_pd($a, $b, 0x20), _mm256_permute2f128_pd($a, $b, 0x31))
                };
            }
            let sums = _mm256_hadd_pd(pair!(acc[0], acc[1]), pair!(acc[2], acc[3]));
            // Four values into `t4`, a four-element array.
            _mm256_storeu_pd(t4.as_mut_ptr(), _mm256_permute4x64_pd(sums, 0b11_01_10_00));
        } else {
            for k in 0..N {
                t[k] = hsum_pd(acc[k]);
            }
        }
        for k in 0..N {
            for jj in full..d {
                t[k] += *p[k].add(jj) * *xp.add(jj);
            }
        }
        t
    }

    /// `out[r] = rows[row(r)] · x` in blocks of four rows, then a pair and a single.
    #[inline(always)]
    unsafe fn dots_into(n: usize, row: impl Fn(usize) -> *const f64, xp: *const f64, d: usize, out: &mut [f64]) {
        let mut r = 0;
        while r + 4 <= n {
            out[r..r + 4].copy_from_slice(&dots([row(r), row(r + 1), row(r + 2), row(r + 3)], xp, d));
            r += 4;
        }
        if r + 2 <= n {
            out[r..r + 2].copy_from_slice(&dots([row(r), row(r + 1)], xp, d));
            r += 2;
        }
        if r < n {
            out[r] = dots([row(r)], xp, d)[0];
        }
    }

    #[inline(always)]
    unsafe fn gemv_f64(rows: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
        let n = out.len();
        assert!(rows.len() >= n * d && x.len() >= d);
        let (p, xp) = (rows.as_ptr(), x.as_ptr());
        dots_into(n, |r| p.add(r * d), xp, d, out);
    }

    /// Four gathered rows at a time: per row the same arithmetic as `gemv_f64`.
    #[inline(always)]
    unsafe fn gather_gemv_f64(rows: &[f64], d: usize, idx: &[u32], x: &[f64], out: &mut [f64]) {
        let n = out.len().min(idx.len());
        let n_rows = rows.len() / d.max(1);
        assert!(x.len() >= d && idx[..n].iter().all(|&r| (r as usize) < n_rows));
        let xp = x.as_ptr();
        let row = |k: usize| rows.as_ptr().add(idx[k] as usize * d);
        dots_into(n, row, xp, d, out);
    }

    #[inline(always)]
    unsafe fn head_dots(q: &[f32], k: &[f32], h_n: usize, out: &mut [f32]) {
        let a = q.len();
        if 8 % h_n != 0 || a % 8 != 0 || k.len() < a {
            return super::head_dots(q, k, h_n, out);
        }
        let mut acc = _mm256_setzero_ps();
        let mut j = 0;
        while j < a {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(j)), _mm256_loadu_ps(k.as_ptr().add(j)), acc);
            j += 8;
        }
        // Lane `l` holds head `l % h_n`. Eight heads are the lanes; four are the sum of the two
        // halves (lane h + lane h+4: the portable kernel's order, so the results are equal).
        match h_n {
            8 => {
                assert!(out.len() >= 8);
                _mm256_storeu_ps(out.as_mut_ptr(), acc);
            }
            4 => {
                assert!(out.len() >= 4);
                let folded = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                _mm_storeu_ps(out.as_mut_ptr(), folded);
            }
            _ => {
                let mut lanes = [0.0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
                out[..h_n].iter_mut().for_each(|o| *o = 0.0);
                for (l, v) in lanes.iter().enumerate() {
                    out[l % h_n] += v;
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn head_axpy(w: &[f32], x: &[f32], y: &mut [f32]) {
        let h_n = w.len();
        let a = y.len();
        if 8 % h_n != 0 || a % 8 != 0 || x.len() < a {
            return super::head_axpy(w, x, y);
        }
        let wv = match h_n {
            // The common case: four heads repeat twice across the eight lanes.
            // An unaligned 128-bit load duplicated into both halves (a `&__m128` made from
            // this 4-byte-aligned pointer would be undefined behaviour).
            4 => {
                let v = _mm_loadu_ps(w.as_ptr());
                _mm256_set_m128(v, v)
            }
            8 => _mm256_loadu_ps(w.as_ptr()),
            _ => {
                let mut w8 = [0.0f32; 8];
                for (l, v) in w8.iter_mut().enumerate() {
                    *v = w[l % h_n];
                }
                _mm256_loadu_ps(w8.as_ptr())
            }
        };
        let mut j = 0;
        while j < a {
            let yp = y.as_mut_ptr().add(j);
            _mm256_storeu_ps(yp, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.as_ptr().add(j)), _mm256_loadu_ps(yp)));
            j += 8;
        }
    }

    #[inline(always)]
    unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let full = n / 8 * 8;
        let av = _mm256_set1_ps(alpha);
        let mut j = 0;
        while j < full {
            let yp = y.as_mut_ptr().add(j);
            _mm256_storeu_ps(yp, _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(j)), _mm256_loadu_ps(yp)));
            j += 8;
        }
        for k in full..n {
            y[k] += alpha * x[k];
        }
    }

    /// [`super::dot_f32`] in 256-bit registers: lane `l` sums `a[8i + l] * b[8i + l]` over
    /// `i` with a multiply then an add (no FMA: the portable kernel rounds the product), then
    /// `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`, then the tail in order: the
    /// portable kernel's operations, so the same bits (the auto-vectoriser split its lanes
    /// into 128-bit halves and shuffled them on every step).
    #[inline(always)]
    unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let full = n / 8 * 8;
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm256_setzero_ps();
        let mut j = 0;
        while j < full {
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(ap.add(j)), _mm256_loadu_ps(bp.add(j))));
            j += 8;
        }
        // (l0 + l4, l1 + l5, l2 + l6, l3 + l7), then (s0 + s1) + (s2 + s3).
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let mut lanes = [0.0f32; 4];
        _mm_storeu_ps(lanes.as_mut_ptr(), s);
        // The tail summed as the portable kernel sums it (`Sum`, the same neutral element).
        let tail: f32 = (full..n).map(|k| *ap.add(k) * *bp.add(k)).sum();
        ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + tail
    }

    /// [`super::lane_dots`] in one 256-bit accumulator with fused multiply-adds, in `i` order:
    /// the lanes [`head_dots`] computes before folding them into heads.
    #[inline(always)]
    unsafe fn lane_dots<const A: usize>(q: &[f32; A], k: &[f32; A]) -> [f32; 8] {
        const { assert!(A % 8 == 0) };
        let mut acc = _mm256_setzero_ps();
        for j in (0..A).step_by(8) {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(j)), _mm256_loadu_ps(k.as_ptr().add(j)), acc);
        }
        let mut out = [0.0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), acc);
        out
    }

    /// [`super::lane_axpy`] with fused multiply-adds (as [`head_axpy`]).
    #[inline(always)]
    unsafe fn lane_axpy<const A: usize>(w: &[f32; 8], x: &[f32; A], y: &mut [f32; A]) {
        const { assert!(A % 8 == 0) };
        let wv = _mm256_loadu_ps(w.as_ptr());
        for j in (0..A).step_by(8) {
            let yp = y.as_mut_ptr().add(j);
            _mm256_storeu_ps(yp, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.as_ptr().add(j)), _mm256_loadu_ps(yp)));
        }
    }

    impl Simd for Avx2 {
        #[inline(always)]
        fn gemv_f64(self, rows: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
            // SAFETY: `self` exists only on a CPU with AVX2 and FMA (`Avx2::detect`).
            unsafe { gemv_f64(rows, d, x, out) }
        }
        #[inline(always)]
        fn gather_gemv_f64(self, rows: &[f64], d: usize, idx: &[u32], x: &[f64], out: &mut [f64]) {
            // SAFETY: as above.
            unsafe { gather_gemv_f64(rows, d, idx, x, out) }
        }
        #[inline(always)]
        fn head_dots(self, q: &[f32], k: &[f32], h_n: usize, out: &mut [f32]) {
            // SAFETY: as above.
            unsafe { head_dots(q, k, h_n, out) }
        }
        #[inline(always)]
        fn head_axpy(self, w: &[f32], x: &[f32], y: &mut [f32]) {
            // SAFETY: as above.
            unsafe { head_axpy(w, x, y) }
        }
        #[inline(always)]
        fn axpy(self, alpha: f32, x: &[f32], y: &mut [f32]) {
            // SAFETY: as above.
            unsafe { axpy(alpha, x, y) }
        }
        #[inline(always)]
        fn dot_f32(self, a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: as above.
            unsafe { dot_f32(a, b) }
        }
        #[inline(always)]
        fn lane_dots<const A: usize>(self, q: &[f32; A], k: &[f32; A]) -> [f32; 8] {
            // SAFETY: as above; `A`-long arrays bound every load.
            unsafe { lane_dots(q, k) }
        }
        #[inline(always)]
        fn lane_axpy<const A: usize>(self, w: &[f32; 8], x: &[f32; A], y: &mut [f32; A]) {
            // SAFETY: as above; `A`-long arrays bound every load and store.
            unsafe { lane_axpy(w, x, y) }
        }
    }
}

/// Hints the CPU to start loading `data` into cache (no effect on correctness).
#[inline(always)]
pub fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for line in data.chunks(16) {
            // SAFETY: prefetch never faults; the pointer is inside a live slice.
            unsafe { _mm_prefetch(line.as_ptr() as *const i8, _MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    for (yi, xi) in y[..n].iter_mut().zip(&x[..n]) {
        *yi += alpha * xi;
    }
}

/// `out[r, :] = scale * (rows[r, :] @ w)` for a row-major `rows` `[n, d]` and `w` `[d, a]`.
pub fn matmul_rows(rows: &[f32], d: usize, w: &[f32], a: usize, scale: f32, out: &mut [f32]) {
    for (x, o) in rows.chunks_exact(d).zip(out.chunks_exact_mut(a)) {
        o.fill(0.0);
        for (i, &xi) in x.iter().enumerate() {
            axpy(xi, &w[i * a..(i + 1) * a], o);
        }
        if scale != 1.0 {
            o.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fold_lanes(lane_dots)` and `lane_axpy(repeat_lanes)` give the bits of `head_dots` and
    /// `head_axpy` of the same kernel set, and agree with the portable set.
    fn fixed_width_agree<K: Simd, const H: usize, const A: usize>(kern: K, q: &[f32; A], k: &[f32; A], w: &[f32]) {
        let mut want = [0.0f32; H];
        kern.head_dots(q, k, H, &mut want);
        let got = fold_lanes::<H>(kern.lane_dots(q, k));
        // Equal values (a zero's sign may differ: one of the two adds the lanes to 0 first).
        assert!(got.iter().zip(&want).all(|(g, w)| g == w), "lane_dots h {H}: {got:?} vs {want:?}");
        let portable = fold_lanes::<H>(Portable.lane_dots(q, k));
        assert!(got.iter().zip(&portable).all(|(g, p)| (g - p).abs() <= 1e-5 * (1.0 + p.abs())), "lane_dots vs portable h {H}");
        let (mut gy, mut wy, mut py) = (*k, *k, *k);
        kern.head_axpy(&w[..H], q, &mut wy);
        kern.lane_axpy(&repeat_lanes::<H>(w), q, &mut gy);
        Portable.lane_axpy(&repeat_lanes::<H>(w), q, &mut py);
        assert!(gy.iter().zip(&wy).all(|(g, w)| g.to_bits() == w.to_bits()), "lane_axpy h {H}");
        assert!(gy.iter().zip(&py).all(|(g, p)| (g - p).abs() <= 1e-5 * (1.0 + p.abs())), "lane_axpy vs portable h {H}");
    }

    /// [`fixed_width_agree`] for every head count at width `A`, on `A`-long arrays at the start
    /// of `a` and `b` (the head weights from `a`, past the query).
    fn fixed_widths_agree<K: Simd, const A: usize>(kern: K, a: &[f32], b: &[f32]) {
        let (q, k): (&[f32; A], &[f32; A]) = (a[..A].try_into().unwrap(), b[..A].try_into().unwrap());
        let w = &a[A..];
        fixed_width_agree::<K, 1, A>(kern, q, k, w);
        fixed_width_agree::<K, 2, A>(kern, q, k, w);
        fixed_width_agree::<K, 4, A>(kern, q, k, w);
        fixed_width_agree::<K, 8, A>(kern, q, k, w);
    }

    /// Every kernel of `kern` on slices starting 1–7 elements past a 32-byte boundary (so
    /// never 16- or 32-byte aligned) and with odd lengths, against the portable kernels.
    fn misaligned_agree<K: Simd>(kern: K) {
        #[repr(C, align(32))]
        struct Aligned([f32; 256]);
        let mut a = Aligned([0.0; 256]);
        let mut b = Aligned([0.0; 256]);
        for i in 0..256 {
            a.0[i] = (i as f32 * 0.37).sin();
            b.0[i] = (i as f32 * 0.91).cos();
        }
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * (1.0 + y.abs());
        for off in 1..8 {
            for n in [1, 3, 7, 8, 9, 17, 31, 33, 64, 65] {
                let (x, y) = (&a.0[off..off + n], &b.0[off..off + n]);
                assert_ne!(x.as_ptr() as usize % 32, 0);
                let mut got = y.to_vec();
                let mut want = y.to_vec();
                kern.axpy(0.5, x, &mut got);
                Portable.axpy(0.5, x, &mut want);
                assert!(got.iter().zip(&want).all(|(g, w)| close(*g as f64, *w as f64)), "axpy off {off} n {n}");
                // The composition's score: the same bits from both kernel sets.
                assert_eq!(kern.dot_f32(x, y).to_bits(), Portable.dot_f32(x, y).to_bits(), "dot_f32 off {off} n {n}");
            }
            for h in [1, 2, 4, 8, 3] {
                let n = 8 * 4;
                let (q, k) = (&a.0[off..off + n], &b.0[off..off + n]);
                let (mut got, mut want) = (vec![0.0f32; h], vec![0.0f32; h]);
                kern.head_dots(q, k, h, &mut got);
                Portable.head_dots(q, k, h, &mut want);
                assert!(got.iter().zip(&want).all(|(g, w)| close(*g as f64, *w as f64)), "head_dots off {off} h {h}");
                let w = &a.0[off + 100..off + 100 + h];
                let (mut gy, mut wy) = (k.to_vec(), k.to_vec());
                kern.head_axpy(w, q, &mut gy);
                Portable.head_axpy(w, q, &mut wy);
                assert!(gy.iter().zip(&wy).all(|(g, w)| close(*g as f64, *w as f64)), "head_axpy off {off} h {h}");
            }
            // The fixed-width kernels on misaligned arrays: within a kernel set, the bits of
            // the slice kernels (attention's two bodies must agree), and close across sets.
            fixed_widths_agree::<K, 32>(kern, &a.0[off..], &b.0[off..]);
            fixed_widths_agree::<K, 64>(kern, &a.0[off..], &b.0[off..]);
            fixed_widths_agree::<K, 128>(kern, &a.0[off..], &b.0[off..]);
            // f64 rows: offsets of one element leave them 8- but not 32-byte aligned.
            let rows: Vec<f64> = (0..7 * 13 + off).map(|i| (i as f64 * 0.3).sin()).collect();
            let x: Vec<f64> = (0..13 + off).map(|i| (i as f64 * 0.7).cos()).collect();
            let (mut got, mut want) = (vec![0.0; 7], vec![0.0; 7]);
            kern.gemv_f64(&rows[off..], 13, &x[off..], &mut got);
            Portable.gemv_f64(&rows[off..], 13, &x[off..], &mut want);
            assert!(got.iter().zip(&want).all(|(g, w)| close(*g, *w)), "gemv off {off}");
            // Gathered rows, out of order and repeated, 5 of them (one block of 4 and a tail).
            let idx = [6u32, 0, 3, 3, 5];
            let (mut got, mut want) = (vec![0.0; 5], vec![0.0; 5]);
            kern.gather_gemv_f64(&rows[off..], 13, &idx, &x[off..], &mut got);
            Portable.gather_gemv_f64(&rows[off..], 13, &idx, &x[off..], &mut want);
            assert!(got.iter().zip(&want).all(|(g, w)| close(*g, *w)), "gather_gemv off {off}");
        }
    }

    #[test]
    fn kernels_agree_on_misaligned_slices_and_odd_lengths() {
        misaligned_agree(Portable);
        #[cfg(target_arch = "x86_64")]
        match Avx2::detect() {
            Some(kern) => misaligned_agree(kern),
            None => eprintln!("no AVX2/FMA on this CPU: only the portable kernels were checked"),
        }
    }

    /// A row's similarity does not depend on where it sits in a product (a block of four, the
    /// tail, alone, gathered): explanations recompute a chain node's similarity on its own and
    /// must get the bits the walk scored with.
    fn rows_are_position_independent<K: Simd>(kern: K) {
        for d in [13, 64] {
            let rows: Vec<f64> = (0..9 * d).map(|i| (i as f64 * 0.37).sin() * 1e3_f64.powf((i % 5) as f64 - 2.0)).collect();
            let x: Vec<f64> = (0..d).map(|i| (i as f64 * 0.91).cos()).collect();
            for n in 1..=9 {
                let mut out = vec![0.0; n];
                kern.gemv_f64(&rows[..n * d], d, &x, &mut out);
                for r in 0..n {
                    let mut alone = [0.0];
                    kern.gemv_f64(&rows[r * d..(r + 1) * d], d, &x, &mut alone);
                    let mut gathered = [0.0];
                    kern.gather_gemv_f64(&rows, d, &[r as u32], &x, &mut gathered);
                    assert_eq!(out[r].to_bits(), alone[0].to_bits(), "d {d} n {n} row {r}: block vs alone");
                    assert_eq!(gathered[0].to_bits(), alone[0].to_bits(), "d {d} row {r}: gathered vs alone");
                }
            }
        }
    }

    #[test]
    fn a_rows_similarity_does_not_depend_on_its_position() {
        rows_are_position_independent(Portable);
        #[cfg(target_arch = "x86_64")]
        if let Some(kern) = Avx2::detect() {
            rows_are_position_independent(kern);
        }
    }

    #[test]
    fn dots_match_naive() {
        let a: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32 * 0.91).cos()).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let (a64, b64): (Vec<f64>, Vec<f64>) = (a.iter().map(|&v| v as f64).collect(), b.iter().map(|&v| v as f64).collect());
        assert!((row_dot_f64(&a64, &b64) - naive).abs() < 1e-12);
        assert!((dot_f32(&a, &b) as f64 - naive).abs() < 1e-5);
    }

    #[test]
    fn gemv_matches_dots() {
        let d = 13;
        let rows: Vec<f64> = (0..7 * d).map(|i| (i as f64 * 0.3).sin()).collect();
        let x: Vec<f64> = (0..d).map(|i| (i as f64 * 0.7).cos()).collect();
        let mut out = vec![0.0; 7];
        gemv_f64(&rows, d, &x, &mut out);
        for r in 0..7 {
            let want: f64 = (0..d).map(|i| rows[r * d + i] * x[i]).sum();
            assert!((out[r] - want).abs() < 1e-12);
        }
    }

    #[test]
    fn matmul_matches_naive() {
        let (n, d, a) = (3, 5, 4);
        let rows: Vec<f32> = (0..n * d).map(|i| i as f32 * 0.1).collect();
        let w: Vec<f32> = (0..d * a).map(|i| (i as f32).sin()).collect();
        let mut out = vec![0.0; n * a];
        matmul_rows(&rows, d, &w, a, 0.5, &mut out);
        for r in 0..n {
            for c in 0..a {
                let want: f32 = (0..d).map(|i| rows[r * d + i] * w[i * a + c]).sum::<f32>() * 0.5;
                assert!((out[r * a + c] - want).abs() < 1e-5);
            }
        }
    }
}
