//! Dense symmetric linear algebra in f64 for the Fréchet distance: the eigendecomposition of a symmetric matrix
//! (Householder reduction to tridiagonal form, then the implicit QL algorithm with Wilkinson-style shifts, after
//! the EISPACK routines `tred2`/`tql2`), the square root of a positive semi-definite matrix, and the statistics
//! of a feature matrix.
//!
//! Matrices are row-major `Vec<f64>` of `n * n` values. The decomposition works on the transpose internally so that
//! every inner loop walks contiguous memory; products use candle's f64 matmul.

use candle_core::{Device, Result, Tensor};

/// Eigenvalues (ascending) and, when asked for, the matching unit eigenvectors as the **rows** of `vectors`.
#[derive(Debug, Clone)]
pub struct SymEigen {
    pub values: Vec<f64>,
    /// Row `k` (`vectors[k * n..(k + 1) * n]`) is the eigenvector of `values[k]`; empty when not asked for.
    pub vectors: Vec<f64>,
    pub n: usize,
}

/// `A = V diag(values) V^T` for a symmetric `a` (only its lower triangle is read).
pub fn sym_eigen(a: &[f64], n: usize, want_vectors: bool) -> Result<SymEigen> {
    if a.len() != n * n {
        candle_core::bail!("sym_eigen: {} values for a {n}x{n} matrix", a.len());
    }
    if let Some(i) = a.iter().position(|v| !v.is_finite()) {
        candle_core::bail!("sym_eigen: non-finite entry at ({}, {})", i / n, i % n);
    }
    if n == 0 {
        return Ok(SymEigen { values: vec![], vectors: vec![], n });
    }
    // vt[c * n + r] holds V[r][c]: columns of V are contiguous.
    let mut vt = vec![0f64; n * n];
    for r in 0..n {
        for c in 0..n {
            vt[c * n + r] = a[r * n + c];
        }
    }
    let mut d = vec![0f64; n];
    let mut e = vec![0f64; n];
    tred2(&mut vt, &mut d, &mut e, n, want_vectors);
    tql2(&mut vt, &mut d, &mut e, n, want_vectors)?;
    // sort ascending, eigenvectors along
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[i].total_cmp(&d[j]));
    let values = order.iter().map(|&i| d[i]).collect();
    let vectors =
        if want_vectors { order.iter().flat_map(|&i| vt[i * n..(i + 1) * n].to_vec()).collect() } else { vec![] };
    Ok(SymEigen { values, vectors, n })
}

/// Householder tridiagonalisation. On return `d` is the diagonal, `e[1..]` the sub-diagonal, and (with
/// `vectors`) `vt` the transposed orthogonal transformation.
fn tred2(vt: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize, vectors: bool) {
    // V[r][c] == vt[c * n + r]
    macro_rules! v {
        ($r:expr, $c:expr) => {
            vt[($c) * n + ($r)]
        };
    }
    for j in 0..n {
        d[j] = v!(n - 1, j);
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for dk in d.iter().take(i) {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v!(i - 1, j);
                v!(i, j) = 0.0;
                v!(j, i) = 0.0;
            }
        } else {
            for dk in d.iter_mut().take(i) {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v!(j, i) = f;
                g = e[j] + v!(j, j) * f;
                // column j of V, rows j+1..i: contiguous in vt
                let col = &vt[j * n..j * n + i];
                for k in j + 1..i {
                    g += col[k] * d[k];
                    e[k] += col[k] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                let (f, g) = (d[j], e[j]);
                let col = &mut vt[j * n..j * n + i];
                for k in j..i {
                    col[k] -= f * e[k] + g * d[k];
                }
                d[j] = v!(i - 1, j);
                v!(i, j) = 0.0;
            }
        }
        d[i] = h;
    }
    if vectors {
        for i in 0..n - 1 {
            v!(n - 1, i) = v!(i, i);
            v!(i, i) = 1.0;
            let h = d[i + 1];
            if h != 0.0 {
                for k in 0..=i {
                    d[k] = v!(k, i + 1) / h;
                }
                for j in 0..=i {
                    let (cj, ci1) = (j * n, (i + 1) * n);
                    let mut g = 0.0;
                    for k in 0..=i {
                        g += vt[ci1 + k] * vt[cj + k];
                    }
                    for k in 0..=i {
                        vt[cj + k] -= g * d[k];
                    }
                }
            }
            for k in 0..=i {
                v!(k, i + 1) = 0.0;
            }
        }
        for j in 0..n {
            d[j] = v!(n - 1, j);
            v!(n - 1, j) = 0.0;
        }
        v!(n - 1, n - 1) = 1.0;
    } else {
        for j in 0..n {
            // the diagonal of the reduced matrix, kept in V's diagonal by the reduction
            d[j] = v!(j, j);
        }
    }
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal matrix (`d`, `e`), accumulating the rotations into `vt`.
fn tql2(vt: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize, vectors: bool) -> Result<()> {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            let mut iter = 0;
            loop {
                iter += 1;
                if iter > 60 {
                    candle_core::bail!("sym_eigen: the QL iteration did not converge for eigenvalue {l} of {n}");
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    if vectors {
                        let (lo, hi) = vt.split_at_mut((i + 1) * n);
                        let (ci, ci1) = (&mut lo[i * n..], &mut hi[..n]);
                        for k in 0..n {
                            let h = ci1[k];
                            ci1[k] = s * ci[k] + c * h;
                            ci[k] = c * ci[k] - s * h;
                        }
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    Ok(())
}

fn tensor(a: &[f64], n: usize) -> Result<Tensor> {
    Tensor::from_slice(a, (n, n), &Device::Cpu)
}

/// `a @ b` for row-major `n x n` matrices.
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Result<Vec<f64>> {
    tensor(a, n)?.matmul(&tensor(b, n)?)?.flatten_all()?.to_vec1::<f64>()
}

/// `V diag(f(values)) V^T` of a decomposition with vectors.
pub fn reconstruct(eig: &SymEigen, f: impl Fn(f64) -> f64) -> Result<Vec<f64>> {
    let n = eig.n;
    if eig.vectors.len() != n * n {
        candle_core::bail!("reconstruct: the decomposition was computed without eigenvectors");
    }
    // rows of `vectors` are eigenvectors: V^T is `vectors` itself
    let vt = tensor(&eig.vectors, n)?;
    let scaled: Vec<f64> = eig.values.iter().map(|&l| f(l)).collect();
    let s = Tensor::from_slice(&scaled, (n, 1), &Device::Cpu)?;
    let svt = vt.broadcast_mul(&s)?; // diag(f) V^T
    vt.t()?.matmul(&svt)?.flatten_all()?.to_vec1::<f64>()
}

/// The square root of a symmetric positive semi-definite matrix, with how far it is from one.
#[derive(Debug, Clone)]
pub struct PsdSqrt {
    pub sqrt: Vec<f64>,
    /// The most negative eigenvalue found (rounding makes PSD matrices show tiny negative ones); clamped to 0.
    pub min_eigenvalue: f64,
    /// `|sqrt^2 - A|_F / |A|_F`: the check that the root is one.
    pub residual: f64,
}

/// `A^{1/2}` by the eigendecomposition, negative eigenvalues (rounding) clamped to zero.
pub fn sqrtm_psd(a: &[f64], n: usize) -> Result<PsdSqrt> {
    let eig = sym_eigen(a, n, true)?;
    let min_eigenvalue = eig.values.first().copied().unwrap_or(0.0);
    let sqrt = reconstruct(&eig, |l| l.max(0.0).sqrt())?;
    let sq = matmul(&sqrt, &sqrt, n)?;
    let norm = frobenius(a);
    let diff: f64 = sq.iter().zip(a).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt();
    Ok(PsdSqrt { sqrt, min_eigenvalue, residual: if norm > 0.0 { diff / norm } else { diff } })
}

pub fn frobenius(a: &[f64]) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// A factor `L` (`n x rank`, row-major) with `A ~ L L^T`, from Cholesky with complete (diagonal) pivoting.
#[derive(Debug, Clone)]
pub struct PsdFactor {
    pub l: Vec<f64>,
    pub rank: usize,
    /// `|L L^T - A|_F / |A|_F`: the check that the factor reproduces the matrix.
    pub residual: f64,
}

/// Pivoted Cholesky of a symmetric positive semi-definite `a` (the largest remaining diagonal entry of the Schur
/// complement as pivot, Higham 2002 ch. 10), column by column (each column of `L` is a column of `a` minus the
/// earlier columns' contribution): stops when every remaining diagonal entry is at most `tol` times the largest
/// diagonal entry of `a`, so singular matrices (covariances of fewer samples than dimensions) get their exact
/// rank. About `n^3 / 2` multiply-adds, all on contiguous vectors.
pub fn pivoted_cholesky(a: &[f64], n: usize, tol: f64) -> Result<PsdFactor> {
    if a.len() != n * n {
        candle_core::bail!("pivoted_cholesky: {} values for a {n}x{n} matrix", a.len());
    }
    if let Some(i) = a.iter().position(|v| !v.is_finite()) {
        candle_core::bail!("pivoted_cholesky: non-finite entry at ({}, {})", i / n, i % n);
    }
    let mut d: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    let max_diag = d.iter().copied().fold(0f64, f64::max);
    let stop = tol * max_diag;
    let mut used = vec![false; n];
    // columns of L, indexed by the original row index
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for _ in 0..n {
        let p = match (0..n).filter(|&i| !used[i]).max_by(|&i, &j| d[i].total_cmp(&d[j])) {
            Some(p) if d[p] > stop && max_diag > 0.0 => p,
            _ => break,
        };
        used[p] = true;
        let mut col = a[p * n..(p + 1) * n].to_vec(); // column p of the symmetric a
        for c in &cols {
            let f = c[p];
            if f != 0.0 {
                for (x, y) in col.iter_mut().zip(c) {
                    *x -= f * y;
                }
            }
        }
        let piv = d[p].sqrt();
        for i in 0..n {
            if used[i] && i != p {
                col[i] = 0.0;
            } else {
                col[i] /= piv;
            }
        }
        col[p] = piv;
        for i in 0..n {
            if !used[i] {
                d[i] -= col[i] * col[i];
            }
        }
        cols.push(col);
    }
    let rank = cols.len();
    let mut l = vec![0f64; n * rank];
    for (c, col) in cols.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            l[i * rank + c] = *v;
        }
    }
    let residual = if rank == 0 {
        if frobenius(a) == 0.0 {
            0.0
        } else {
            1.0
        }
    } else {
        let lt = Tensor::from_slice(&l, (n, rank), &Device::Cpu)?;
        let llt = lt.matmul(&lt.t()?)?.flatten_all()?.to_vec1::<f64>()?;
        let diff: f64 = llt.iter().zip(a).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt();
        let norm = frobenius(a);
        if norm > 0.0 {
            diff / norm
        } else {
            diff
        }
    };
    Ok(PsdFactor { l, rank, residual })
}

/// Mean `[d]` and unbiased covariance `[d x d]` (divided by `n - 1`, as numpy's `np.cov`) of `n` rows of `d` values.
pub fn mean_cov(rows: &[f32], d: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if d == 0 || rows.len() % d != 0 {
        candle_core::bail!("mean_cov: {} values are not rows of {d}", rows.len());
    }
    let n = rows.len() / d;
    if n < 2 {
        candle_core::bail!("mean_cov: a covariance needs at least 2 rows, got {n}");
    }
    let x = Tensor::from_slice(rows, (n, d), &Device::Cpu)?.to_dtype(candle_core::DType::F64)?;
    let mean = x.mean(0)?;
    let xc = x.broadcast_sub(&mean)?;
    let cov = (xc.t()?.matmul(&xc)? / (n as f64 - 1.0))?;
    // exact symmetry (the product is symmetric up to rounding)
    let cov = ((&cov + cov.t()?)? * 0.5)?;
    Ok((mean.to_vec1::<f64>()?, cov.flatten_all()?.to_vec1::<f64>()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ebm_kernels::Rng;

    /// A symmetric matrix with standard normal entries (seeded).
    pub(crate) fn random_sym(n: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = r.normal_f64();
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        a
    }

    #[test]
    fn decomposition_reconstructs_and_is_orthogonal() {
        for &n in &[1usize, 2, 3, 17, 120] {
            let a = random_sym(n, n as u64);
            let eig = sym_eigen(&a, n, true).unwrap();
            assert!(eig.values.windows(2).all(|w| w[0] <= w[1]));
            let back = reconstruct(&eig, |l| l).unwrap();
            let err: f64 = back.iter().zip(&a).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
            assert!(err < 1e-10 * n as f64, "n {n}: reconstruction error {err}");
            let v = &eig.vectors;
            for i in 0..n {
                for j in 0..n {
                    let dot: f64 = (0..n).map(|k| v[i * n + k] * v[j * n + k]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-11, "n {n}: v_{i} . v_{j} = {dot}");
                }
            }
            // values alone agree with values computed with vectors
            let only = sym_eigen(&a, n, false).unwrap();
            for (p, q) in only.values.iter().zip(&eig.values) {
                assert!((p - q).abs() < 1e-10, "{p} vs {q}");
            }
            let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
            assert!((eig.values.iter().sum::<f64>() - trace).abs() < 1e-9 * n as f64);
        }
    }

    #[test]
    fn known_eigenvalues() {
        // [[2, 1], [1, 2]]: 1 and 3; a diagonal matrix: its diagonal; a rank-1 matrix u u^T: |u|^2 and zeros
        let e = sym_eigen(&[2.0, 1.0, 1.0, 2.0], 2, true).unwrap();
        assert!((e.values[0] - 1.0).abs() < 1e-14 && (e.values[1] - 3.0).abs() < 1e-14);
        let e = sym_eigen(&[3.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0], 3, false).unwrap();
        assert_eq!(e.values, vec![-1.0, 2.0, 3.0]);
        let u = [1.0, 2.0, 3.0, 4.0];
        let a: Vec<f64> = (0..16).map(|k| u[k / 4] * u[k % 4]).collect();
        let e = sym_eigen(&a, 4, false).unwrap();
        assert!((e.values[3] - 30.0).abs() < 1e-12);
        assert!(e.values[..3].iter().all(|v| v.abs() < 1e-12), "{:?}", e.values);
    }

    #[test]
    fn pivoted_cholesky_reproduces_full_rank_and_singular_matrices() {
        let n = 50;
        let b = random_sym(n, 11);
        let a = matmul(&b, &b, n).unwrap();
        let f = pivoted_cholesky(&a, n, 1e-13).unwrap();
        assert_eq!(f.rank, n);
        assert!(f.residual < 1e-13, "{}", f.residual);
        // rank 7: a covariance of 8 samples in 50 dimensions
        let mut r = Rng::new(12);
        let x: Vec<f32> = (0..8 * n).map(|_| r.normal()).collect();
        let (_, c) = mean_cov(&x, n).unwrap();
        let f = pivoted_cholesky(&c, n, 1e-12).unwrap();
        assert_eq!(f.rank, 7);
        assert!(f.residual < 1e-13, "{}", f.residual);
        assert_eq!(pivoted_cholesky(&[0.0; 9], 3, 1e-12).unwrap().rank, 0);
    }

    #[test]
    fn psd_square_root() {
        let n = 60;
        let b = random_sym(n, 9);
        let a = matmul(&b, &b, n).unwrap(); // PSD
        let s = sqrtm_psd(&a, n).unwrap();
        assert!(s.residual < 1e-12, "residual {}", s.residual);
        // the root is itself symmetric PSD
        let e = sym_eigen(&s.sqrt, n, false).unwrap();
        assert!(e.values[0] > -1e-9, "{}", e.values[0]);
    }
}
