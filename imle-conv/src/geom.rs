//! The geometry of a 2-d window operation (convolution or pooling) on one image; a 1-d
//! one is the case `h = kh = sh = 1`, no vertical padding.

use crate::error::ConvError;

/// Geometry of a 2-d window operation (convolution or pooling) on one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    /// Input channels.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// Strides.
    pub sh: usize,
    pub sw: usize,
    /// Padding before (top, left); the padding after is implied by `oh`, `ow`.
    pub ph: usize,
    pub pw: usize,
    /// Output height and width.
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// Rows of the im2col matrix: `c * kh * kw`.
    pub fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output positions per channel: `oh * ow`.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Input elements per image.
    pub fn chw(&self) -> usize {
        self.c * self.h * self.w
    }
    /// True when the im2col matrix is the input itself (1x1 kernel, stride 1, no padding).
    pub(crate) fn is_identity(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    /// The output columns `ox` whose input column `ox * sw + kx - pw` lies inside `0..w`.
    #[inline]
    pub(crate) fn valid_cols(&self, kx: usize) -> (usize, usize) {
        valid_range(self.w, self.ow, self.sw, kx, self.pw)
    }
    #[inline]
    pub(crate) fn valid_rows(&self, ky: usize) -> (usize, usize) {
        valid_range(self.h, self.oh, self.sh, ky, self.ph)
    }
}

/// `lo..hi` = the outputs `o` with `0 <= o * s + k - p < n`.
#[inline]
pub(crate) fn valid_range(n: usize, on: usize, s: usize, k: usize, p: usize) -> (usize, usize) {
    let lo = if k >= p { 0 } else { (p - k).div_ceil(s) };
    // o * s + k - p <= n - 1  <=>  o <= (n - 1 + p - k) / s
    let hi = if n + p > k {
        ((n - 1 + p - k) / s + 1).min(on)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Output size of a window of `k` with stride `s` over `n` padded by `before + after`.
pub(crate) fn out_size(
    axis: &'static str,
    n: usize,
    k: usize,
    s: usize,
    before: usize,
    after: usize,
) -> Result<usize, ConvError> {
    if s == 0 {
        return Err(ConvError::ZeroStride);
    }
    let padded = n + before + after;
    if k > padded || k == 0 {
        return Err(ConvError::KernelTooLarge {
            axis,
            kernel: k,
            padded,
        });
    }
    Ok((padded - k) / s + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_brute_force() {
        for n in 1..7 {
            for s in 1..4 {
                for k in 0..5 {
                    for p in 0..4 {
                        if n + 2 * p < k + 1 {
                            continue;
                        }
                        let on = (n + 2 * p - (k + 1)) / s + 1;
                        let (lo, hi) = valid_range(n, on, s, k, p);
                        let want: Vec<usize> = (0..on)
                            .filter(|&o| o * s + k >= p && o * s + k - p < n)
                            .collect();
                        let got: Vec<usize> = (lo..hi).collect();
                        assert_eq!(got, want, "n={n} s={s} k={k} p={p}");
                    }
                }
            }
        }
    }
}
