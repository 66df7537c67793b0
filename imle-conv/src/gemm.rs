//! The one matrix-product entry point of the crate's kernels (dense layers, im2col
//! convolutions, Winograd tiles): `sgemm` on strided `f32` matrices, by the `gemm` crate.

/// `c[m, n] (+)= a[m, k] * b[k, n]` for strided matrices (row stride, column stride).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn sgemm(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_rs..i * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    debug_assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    debug_assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    debug_assert!(c.len() >= (m - 1) * c_rs + n);
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserted bounds above keep every access inside the slices.
    unsafe {
        sgemm_raw(
            (m, n, k),
            a.as_ptr(),
            (a_rs, a_cs),
            b.as_ptr(),
            (b_rs, b_cs),
            c.as_mut_ptr(),
            c_rs,
            accumulate,
            par,
        )
    }
}

/// [`sgemm`] on raw pointers, for callers that split one output among threads.
///
/// # Safety
/// `a`, `b` and `c` must be valid for every element the strides address
/// (`m x k`, `k x n`, `m x n`), and no other thread may access `c`'s elements.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn sgemm_raw(
    (m, n, k): (usize, usize, usize),
    a: *const f32,
    (a_rs, a_cs): (usize, usize),
    b: *const f32,
    (b_rs, b_cs): (usize, usize),
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        accumulate,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    )
}
