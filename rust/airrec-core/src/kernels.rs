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
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Dot product of two f32 vectors accumulated in f64: decisions (walk, pruning) use it so that
/// the Rust engine and the NumPy reference agree except on exact ties.
#[inline(always)]
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] as f64 * y[l] as f64;
        }
    }
    let mut tail = 0.0f64;
    for i in chunks * 8..n {
        tail += a[i] as f64 * b[i] as f64;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Dot product of two f64 vectors (eight independent lanes).
#[inline(always)]
pub fn dot_f64_f64(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f64;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
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
    for i in n / 4 * 4..n {
        out[i] = dot_f64_f64(&rows[i * d..(i + 1) * d], x);
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

    #[test]
    fn dots_match_naive() {
        let a: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32 * 0.91).cos()).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot_f64(&a, &b) - naive).abs() < 1e-12);
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
