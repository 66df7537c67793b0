//! Winograd's minimal filtering F(2, 3) (Lavin & Gray 2016) for stride-1 convolutions
//! with 3-tap kernels: 3x3 in 2-d (F(2x2, 3x3): 16 products per 4 outputs instead of 36)
//! and 1x3 along rows, as in a 1-d convolution (F(2, 3): 4 products per 2 outputs
//! instead of 6).
//!
//! Per axis, with a tile of 4 inputs `d`, 3 taps `g` and 2 outputs `y`:
//! `v = Bᵀ d` (input transform), `u = G g` (kernel transform), `m = u ⊙ v`, `y = Aᵀ m`.
//! The 2-d transform applies it along x, then along y. The products over channels,
//! `M[ξ] = U[ξ] · V[ξ]`, are one GEMM per component `ξ` (`o x tiles x c`).
//!
//! The backward pass is the same linear algorithm transposed:
//! `dM = A dY`, `dU[ξ] = dM[ξ] · V[ξ]ᵀ`, `dV[ξ] = U[ξ]ᵀ · dM[ξ]`, `dg = Gᵀ dU`,
//! `dx = B dV` (added back over the overlapping tiles).
//!
//! **Layout.** A row of `tx` tiles is stored `tx + 1` wide: the padded input row (`2tx + 2`
//! values) splits into its even and odd elements, and tile `j`'s inputs are then
//! `even[j], odd[j], even[j + 1], odd[j + 1]`, so every transform is one flat,
//! vectorisable pass over a whole plane; likewise rows (even and odd padded rows) for the
//! y direction. The extra tile per row is computed and ignored (its output gradient is
//! zero), at the price of `1 / tx` more GEMM work.

use crate::buffers::Buf;
use crate::gemm::sgemm;
use crate::geom::Geom;
use multiversion::multiversion;

/// `v = Bᵀ d` for tiles whose inputs are `(a[m], b[m], a[m + s], b[m + s])`.
#[multiversion(targets = "simd")]
fn bt(a: &[f32], b: &[f32], s: usize, v: [&mut [f32]; 4]) {
    let [v0, v1, v2, v3] = v;
    let n = v0.len();
    let (a0, a1, b0, b1) = (&a[..n], &a[s..s + n], &b[..n], &b[s..s + n]);
    let (v1, v2, v3) = (&mut v1[..n], &mut v2[..n], &mut v3[..n]);
    for m in 0..n {
        v0[m] = a0[m] - a1[m];
        v1[m] = b0[m] + a1[m];
        v2[m] = a1[m] - b0[m];
        v3[m] = b0[m] - b1[m];
    }
}

/// The transpose of [`bt`]: `(da, db) = B dv`, written over `da[..n + s]`, `db[..n + s]`
/// (the tile inputs at `m` and `m + s`; `n = dv[0].len()`).
#[multiversion(targets = "simd")]
fn bt_t(dv: [&[f32]; 4], s: usize, da: &mut [f32], db: &mut [f32]) {
    let n = dv[0].len();
    let [v0, v1, v2, v3] = dv.map(|v| &v[..n]);
    for m in 0..n {
        da[m] = v0[m];
        db[m] = v1[m] - v2[m] + v3[m];
    }
    da[n..n + s].fill(0.0);
    db[n..n + s].fill(0.0);
    let (da1, db1) = (&mut da[s..s + n], &mut db[s..s + n]);
    for m in 0..n {
        da1[m] += v1[m] + v2[m] - v0[m];
        db1[m] -= v3[m];
    }
}

/// `y = Aᵀ m`: the two outputs of each tile from its four components.
#[multiversion(targets = "simd")]
fn at(m: [&[f32]; 4], y0: &mut [f32], y1: &mut [f32]) {
    let n = y0.len();
    let [m0, m1, m2, m3] = m.map(|v| &v[..n]);
    let y1 = &mut y1[..n];
    for j in 0..n {
        y0[j] = m0[j] + m1[j] + m2[j];
        y1[j] = m1[j] - m2[j] - m3[j];
    }
}

/// The transpose of [`at`]: `m = A y`.
#[multiversion(targets = "simd")]
fn at_t(y0: &[f32], y1: &[f32], m: [&mut [f32]; 4]) {
    let [m0, m1, m2, m3] = m;
    let n = m0.len();
    let (y0, y1) = (&y0[..n], &y1[..n]);
    let (m1, m2, m3) = (&mut m1[..n], &mut m2[..n], &mut m3[..n]);
    for j in 0..n {
        m0[j] = y0[j];
        m1[j] = y0[j] + y1[j];
        m2[j] = y0[j] - y1[j];
        m3[j] = -y1[j];
    }
}

/// `u = G g` (3 taps to 4 components).
fn g3(g: [f32; 3]) -> [f32; 4] {
    [
        g[0],
        0.5 * (g[0] + g[1] + g[2]),
        0.5 * (g[0] - g[1] + g[2]),
        g[2],
    ]
}

/// `dg = Gᵀ du`.
fn g3_t(u: [f32; 4]) -> [f32; 3] {
    [
        u[0] + 0.5 * (u[1] + u[2]),
        0.5 * (u[1] - u[2]),
        0.5 * (u[1] + u[2]) + u[3],
    ]
}

/// `e[k] = x[2k]`, `o[k] = x[2k + 1]`.
#[multiversion(targets = "simd")]
fn deinterleave(x: &[f32], e: &mut [f32], o: &mut [f32]) {
    for ((pair, e), o) in x.chunks_exact(2).zip(e.iter_mut()).zip(o.iter_mut()) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `x[2k] = e[k]`, `x[2k + 1] = o[k]`.
#[multiversion(targets = "simd")]
fn interleave(e: &[f32], o: &[f32], x: &mut [f32]) {
    for ((pair, e), o) in x.chunks_exact_mut(2).zip(e).zip(o) {
        pair[0] = *e;
        pair[1] = *o;
    }
}

/// `n` consecutive slices of `len` from `buf`.
fn split4(buf: &mut [f32], len: usize) -> [&mut [f32]; 4] {
    let (a, r) = buf.split_at_mut(len);
    let (b, r) = r.split_at_mut(len);
    let (c, r) = r.split_at_mut(len);
    [a, b, c, &mut r[..len]]
}

/// Grows a pooled buffer to at least `n` elements (contents unspecified: every pass
/// writes what it reads).
fn ensure(v: &mut Buf, n: usize) {
    if v.len() < n {
        v.resize_uninit(n);
    }
}

/// The Winograd plan of one convolution geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Winograd {
    /// 3x3 kernel (F(2x2, 3x3), 16 components); else 1x3 along rows (F(2, 3), 4).
    two_d: bool,
    /// Tile rows per image: `ceil(oh / 2)` in 2-d, `oh` along rows.
    ty: usize,
    /// Tiles per row: `ceil(ow / 2)`.
    tx: usize,
}

/// Per-thread buffers of the Winograd passes.
#[derive(Default)]
pub(crate) struct WinoScratch {
    /// Transformed input `V[ξ, c, tile]`.
    v: Buf,
    /// Products `M[ξ, o, tile]`, or their gradient.
    m: Buf,
    /// Gradient of `V`.
    dv: Buf,
    /// The padded image (2-d: even rows, then odd rows), or the output band.
    plane: Buf,
    /// Its even and odd columns.
    eo: Buf,
    /// Its transform along x, per row parity and component; or the output side's.
    xs: Buf,
}

impl Winograd {
    /// The plan for a stride-1 convolution with a 3x3 or a 1x3 kernel (a 1-d
    /// convolution); `None` for any other geometry.
    pub fn of(g: &Geom) -> Option<Winograd> {
        if g.sh != 1 || g.sw != 1 || g.kw != 3 || !(g.kh == 3 || g.kh == 1) {
            return None;
        }
        let two_d = g.kh == 3;
        Some(Winograd {
            two_d,
            ty: if two_d { g.oh.div_ceil(2) } else { g.oh },
            tx: g.ow.div_ceil(2),
        })
    }
    /// Components per tile.
    pub fn comps(&self) -> usize {
        if self.two_d {
            16
        } else {
            4
        }
    }
    /// Stored tiles per row (one more than used).
    fn w1(&self) -> usize {
        self.tx + 1
    }
    /// Stored tiles per image.
    fn tiles(&self) -> usize {
        self.ty * self.w1()
    }
    /// Padded plane rows of one parity (2-d: `ty + 1` each) or in all (rows: `ty`).
    fn plane_rows(&self) -> usize {
        if self.two_d {
            self.ty + 1
        } else {
            self.ty
        }
    }
    /// Padded input row: `2 (tx + 1)`.
    fn wp(&self) -> usize {
        2 * self.w1()
    }
    fn parities(&self) -> usize {
        if self.two_d {
            2
        } else {
            1
        }
    }
    /// Index of component `(cy, cx)`.
    fn xi(&self, cy: usize, cx: usize) -> usize {
        if self.two_d {
            cy * 4 + cx
        } else {
            cx
        }
    }

    /// `U[ξ, o, c]` from the kernel `w[o, c, kh, 3]`.
    pub fn kernel(&self, w: &[f32], o: usize, c: usize) -> Vec<f32> {
        let kh = if self.two_d { 3 } else { 1 };
        let mut u = vec![0.0; self.comps() * o * c];
        for (oc, g) in w.chunks_exact(kh * 3).enumerate() {
            let mut rows = [[0.0f32; 4]; 3];
            for (dst, r) in rows.iter_mut().zip(g.chunks_exact(3)) {
                *dst = g3([r[0], r[1], r[2]]);
            }
            for cx in 0..4 {
                if self.two_d {
                    let col = g3([rows[0][cx], rows[1][cx], rows[2][cx]]);
                    for (cy, v) in col.into_iter().enumerate() {
                        u[self.xi(cy, cx) * o * c + oc] = v;
                    }
                } else {
                    u[cx * o * c + oc] = rows[0][cx];
                }
            }
        }
        u
    }

    /// Adds `Gᵀ dU G` (the kernel gradient) of `du[ξ, o, c]` into `gw[o, c, kh, 3]`.
    pub fn kernel_t(&self, du: &[f32], o: usize, c: usize, gw: &mut [f32]) {
        let kh = if self.two_d { 3 } else { 1 };
        for (oc, g) in gw.chunks_exact_mut(kh * 3).enumerate() {
            let at = |cy: usize, cx: usize| du[self.xi(cy, cx) * o * c + oc];
            let mut rows = [[0.0f32; 4]; 3]; // [ky][cx]
            for cx in 0..4 {
                if self.two_d {
                    let t = g3_t([at(0, cx), at(1, cx), at(2, cx), at(3, cx)]);
                    for (row, v) in rows.iter_mut().zip(t) {
                        row[cx] = v;
                    }
                } else {
                    rows[0][cx] = at(0, cx);
                }
            }
            for (row, r) in g.chunks_exact_mut(3).zip(rows) {
                row.iter_mut().zip(g3_t(r)).for_each(|(d, v)| *d += v);
            }
        }
    }

    /// Padded plane offset of input row `iy` of channel `ci` (`None` outside the plane).
    fn row_at(&self, g: &Geom, ci: usize, iy: usize) -> Option<usize> {
        let (rows, wp, r) = (self.plane_rows(), self.wp(), iy + g.ph);
        if self.two_d {
            (r < 2 * rows).then(|| (((r % 2) * g.c + ci) * rows + r / 2) * wp + g.pw)
        } else {
            (r < rows).then(|| (ci * rows + r) * wp + g.pw)
        }
    }

    /// `V[ξ, c, tile]` of one image `x[c, h, w]` into `s.v`.
    fn input(&self, x: &[f32], g: &Geom, s: &mut WinoScratch) {
        let (c, w1, t) = (g.c, self.w1(), self.tiles());
        // per parity and channel: the padded rows, their columns split even / odd
        let nc = self.plane_rows() * w1;
        let n = c * nc;
        let np = self.parities();
        ensure(&mut s.v, self.comps() * c * t);
        ensure(&mut s.plane, np * 2 * n);
        ensure(&mut s.eo, np * 2 * (n + 1));
        ensure(&mut s.xs, np * 4 * n);
        // every padded row: zeros, the image row at `pw`, zeros
        let rows = self.plane_rows();
        let plane = &mut s.plane[..np * 2 * n];
        for (k, dst) in plane.chunks_exact_mut(self.wp()).enumerate() {
            let (p, ci, ri) = (k / (c * rows), (k / rows) % c, k % rows);
            let r = if self.two_d { 2 * ri + p } else { ri };
            match r.checked_sub(g.ph).filter(|&iy| iy < g.h) {
                Some(iy) => {
                    let src = &x[(ci * g.h + iy) * g.w..][..g.w];
                    dst[..g.pw].fill(0.0);
                    dst[g.pw..g.pw + g.w].copy_from_slice(src);
                    dst[g.pw + g.w..].fill(0.0);
                }
                None => dst.fill(0.0),
            }
        }
        for p in 0..np {
            let (e, o) = s.eo[p * 2 * (n + 1)..(p + 1) * 2 * (n + 1)].split_at_mut(n + 1);
            deinterleave(&plane[p * 2 * n..(p + 1) * 2 * n], e, o);
            e[n] = 0.0;
            o[n] = 0.0;
            if self.two_d {
                bt(e, o, 1, split4(&mut s.xs[p * 4 * n..(p + 1) * 4 * n], n));
            } else {
                // one tile row per padded row: the x transform is V itself
                bt(e, o, 1, split4(&mut s.v[..4 * n], n));
            }
        }
        if self.two_d {
            // along y: tile row i takes padded rows 2i .. 2i + 3 = even / odd rows i, i + 1
            let (xe, xo) = s.xs.split_at(4 * n);
            for cx in 0..4 {
                for ci in 0..c {
                    let at = cx * n + ci * nc;
                    let mut outs = s.v[..]
                        .chunks_mut(c * t)
                        .skip(cx)
                        .step_by(4)
                        .map(|v| &mut v[ci * t..ci * t + t]);
                    let v: [&mut [f32]; 4] = std::array::from_fn(|_| outs.next().unwrap());
                    bt(&xe[at..at + nc], &xo[at..at + nc], w1, v);
                }
            }
        }
    }

    /// Adds `B dV` of `s.dv[ξ, c, tile]` (the input gradient) into `gx[c, h, w]`.
    fn input_t(&self, g: &Geom, s: &mut WinoScratch, gx: &mut [f32]) {
        let (c, w1, t) = (g.c, self.w1(), self.tiles());
        let nc = self.plane_rows() * w1;
        let n = c * nc;
        let np = self.parities();
        let eo = &mut s.eo[..np * 2 * (n + 1)];
        if self.two_d {
            let (dxe, dxo) = s.xs[..8 * n].split_at_mut(4 * n);
            for cx in 0..4 {
                for ci in 0..c {
                    let at = cx * n + ci * nc;
                    let dv: [&[f32]; 4] = std::array::from_fn(|cy| {
                        let xi = self.xi(cy, cx);
                        &s.dv[(xi * c + ci) * t..(xi * c + ci) * t + t]
                    });
                    bt_t(dv, w1, &mut dxe[at..at + nc], &mut dxo[at..at + nc]);
                }
            }
            for p in 0..2 {
                let (de, dod) = eo[p * 2 * (n + 1)..(p + 1) * 2 * (n + 1)].split_at_mut(n + 1);
                let dx = &s.xs[p * 4 * n..(p + 1) * 4 * n];
                bt_t(
                    std::array::from_fn(|cx| &dx[cx * n..(cx + 1) * n]),
                    1,
                    de,
                    dod,
                );
            }
        } else {
            let (de, dod) = eo[..2 * (n + 1)].split_at_mut(n + 1);
            bt_t(
                std::array::from_fn(|cx| &s.dv[cx * n..(cx + 1) * n]),
                1,
                de,
                dod,
            );
        }
        let plane = &mut s.plane[..np * 2 * n];
        for p in 0..np {
            let (de, dod) = eo[p * 2 * (n + 1)..(p + 1) * 2 * (n + 1)].split_at(n + 1);
            interleave(&de[..n], &dod[..n], &mut plane[p * 2 * n..(p + 1) * 2 * n]);
        }
        for (ci, gxc) in gx.chunks_exact_mut(g.h * g.w).enumerate() {
            for (iy, dst) in gxc.chunks_exact_mut(g.w).enumerate() {
                if let Some(at) = self.row_at(g, ci, iy) {
                    let src = &plane[at..at + g.w];
                    dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                }
            }
        }
    }

    /// Output rows per tile row.
    fn out_rows(&self) -> usize {
        if self.two_d {
            2
        } else {
            1
        }
    }

    /// `out[o, oh, ow] = bias + Aᵀ M A` of `s.m[ξ, o, tile]`.
    fn output(
        &self,
        g: &Geom,
        o: usize,
        s: &mut WinoScratch,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (w1, n) = (self.w1(), o * self.tiles());
        let oy = self.out_rows();
        // xs: R[a][cx][o, tile] (2-d: after the y direction), then Z even / odd columns
        ensure(&mut s.xs, 8 * n + 2 * n);
        ensure(&mut s.plane, 2 * n);
        let (r, z) = s.xs.split_at_mut(8 * n);
        let m = &s.m[..self.comps() * n];
        if self.two_d {
            let (r0, r1) = r.split_at_mut(4 * n);
            for cx in 0..4 {
                let mc: [&[f32]; 4] = std::array::from_fn(|cy| {
                    let xi = self.xi(cy, cx);
                    &m[xi * n..(xi + 1) * n]
                });
                at(
                    mc,
                    &mut r0[cx * n..(cx + 1) * n],
                    &mut r1[cx * n..(cx + 1) * n],
                );
            }
        }
        for a in 0..oy {
            // 1-d: the x direction works on M itself
            let ra = if self.two_d {
                &r[a * 4 * n..(a + 1) * 4 * n]
            } else {
                m
            };
            let (ze, zo) = z[..2 * n].split_at_mut(n);
            at(std::array::from_fn(|cx| &ra[cx * n..(cx + 1) * n]), ze, zo);
            let band = &mut s.plane[..2 * n];
            interleave(ze, zo, band);
            for (oi, out_o) in out.chunks_exact_mut(g.p()).enumerate() {
                let b = bias.map_or(0.0, |b| b[oi]);
                for i in 0..self.ty {
                    let row = i * oy + a;
                    if row >= g.oh {
                        break;
                    }
                    let src = &band[(oi * self.ty + i) * 2 * w1..][..g.ow];
                    let dst = &mut out_o[row * g.ow..(row + 1) * g.ow];
                    dst.iter_mut().zip(src).for_each(|(d, v)| *d = v + b);
                }
            }
        }
    }

    /// `s.m[ξ, o, tile] = A dY Aᵀ` of the output gradient `gout[o, oh, ow]`.
    fn output_t(&self, g: &Geom, o: usize, gout: &[f32], s: &mut WinoScratch) {
        let (w1, n) = (self.w1(), o * self.tiles());
        let oy = self.out_rows();
        ensure(&mut s.m, self.comps() * n);
        ensure(&mut s.xs, 8 * n + 2 * n);
        ensure(&mut s.plane, 2 * n);
        let (r, z) = s.xs.split_at_mut(8 * n);
        let m = &mut s.m[..self.comps() * n];
        for a in 0..oy {
            let band = &mut s.plane[..2 * n];
            for (k, dst) in band.chunks_exact_mut(2 * w1).enumerate() {
                let (oi, i) = (k / self.ty, k % self.ty);
                let row = i * oy + a;
                if row < g.oh {
                    dst[..g.ow].copy_from_slice(&gout[oi * g.p() + row * g.ow..][..g.ow]);
                    dst[g.ow..].fill(0.0);
                } else {
                    dst.fill(0.0);
                }
            }
            let (ze, zo) = z[..2 * n].split_at_mut(n);
            deinterleave(band, ze, zo);
            // 1-d: the x direction writes M itself
            let ra = if self.two_d {
                &mut r[a * 4 * n..(a + 1) * 4 * n]
            } else {
                &mut m[..]
            };
            at_t(ze, zo, split4(ra, n));
        }
        if self.two_d {
            let (r0, r1) = r.split_at(4 * n);
            for cx in 0..4 {
                let mut outs = m.chunks_mut(n).skip(cx).step_by(4);
                let dm: [&mut [f32]; 4] = std::array::from_fn(|_| outs.next().unwrap());
                at_t(&r0[cx * n..(cx + 1) * n], &r1[cx * n..(cx + 1) * n], dm);
            }
        }
    }

    /// Forward of one image: `out_b[o, oh, ow] = bias + conv(x_b, w)` with `u` from
    /// [`Winograd::kernel`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x_b: &[f32],
        u: &[f32],
        bias: Option<&[f32]>,
        out_b: &mut [f32],
        o: usize,
        g: &Geom,
        s: &mut WinoScratch,
        par: bool,
    ) {
        let (c, t) = (g.c, self.tiles());
        self.input(x_b, g, s);
        ensure(&mut s.m, self.comps() * o * t);
        for xi in 0..self.comps() {
            // M[ξ] (o x t) = U[ξ] (o x c) · V[ξ] (c x t)
            sgemm(
                (o, t, c),
                &u[xi * o * c..],
                (c, 1),
                &s.v[xi * c * t..],
                (t, 1),
                &mut s.m[xi * o * t..],
                t,
                false,
                par,
            );
        }
        self.output(g, o, s, bias, out_b);
    }

    /// Backward of one image: adds the kernel-domain gradient into `du[ξ, o, c]` and, if
    /// asked, the input gradient into `gx_b`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x_b: &[f32],
        u: &[f32],
        gout_b: &[f32],
        gx_b: Option<&mut [f32]>,
        du: &mut [f32],
        o: usize,
        g: &Geom,
        s: &mut WinoScratch,
        par: bool,
    ) {
        let (c, t) = (g.c, self.tiles());
        self.input(x_b, g, s);
        self.output_t(g, o, gout_b, s);
        for xi in 0..self.comps() {
            // dU[ξ] (o x c) += dM[ξ] (o x t) · V[ξ]ᵀ (t x c)
            sgemm(
                (o, c, t),
                &s.m[xi * o * t..],
                (t, 1),
                &s.v[xi * c * t..],
                (1, t),
                &mut du[xi * o * c..],
                c,
                true,
                par,
            );
        }
        if let Some(gx_b) = gx_b {
            ensure(&mut s.dv, self.comps() * c * t);
            for xi in 0..self.comps() {
                // dV[ξ] (c x t) = U[ξ]ᵀ (c x o) · dM[ξ] (o x t)
                sgemm(
                    (c, t, o),
                    &u[xi * o * c..],
                    (1, c),
                    &s.m[xi * o * t..],
                    (t, 1),
                    &mut s.dv[xi * c * t..],
                    t,
                    false,
                    par,
                );
            }
            self.input_t(g, s, gx_b);
        }
    }
}
