//! The microkernel interface: one tile's operands ([`Tile`]), the bounds check every
//! microkernel runs first, the [`Microkernel`] trait the blocked driver calls, and the
//! write-back of an accumulator tile shared by the microkernels that store whole vectors, and
//! the epilogue (`+ bias`, ReLU) every store applies on the last k block.

use super::Epilogue;
use crate::simd::F32x;

/// One microkernel call: `k` steps of `A(i, p) = a[i * a_rs + p * a_cs]` times
/// `B(p, j) = b[p * b_rs + j]`, into an output whose rows are `ldc` apart, then the epilogue
/// `epi` with its bias starting at the tile's first column (`Epilogue::NONE` but on the last k
/// block).
#[derive(Clone, Copy)]
pub(crate) struct Tile<'a> {
    pub k: usize,
    pub a: &'a [f32],
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: &'a [f32],
    pub b_rs: usize,
    pub ldc: usize,
    pub alpha: f32,
    pub beta: f32,
    pub epi: Epilogue<'a>,
}

impl Tile<'_> {
    /// Panics unless `1 <= rows <= MR`, `1 <= cols <= NR` and every index the `rows x cols`
    /// corner of this tile reads (rows `< rows` of A, columns `< cols` of B, `k` steps) or
    /// writes (`out[i * ldc + j]`) lies inside its slice, and a bias holds `cols` elements.
    /// Microkernels call this first: it is
    /// what makes their unchecked SIMD accesses sound.
    #[inline(always)]
    pub(crate) fn assert_fits<const MR: usize, const NR: usize>(
        &self,
        rows: usize,
        cols: usize,
        out_len: usize,
    ) {
        assert!((1..=MR).contains(&rows) && (1..=NR).contains(&cols));
        // Largest index touched plus one, or None on overflow.
        let extent = |rows: usize, rs: usize, cols: usize, cs: usize| {
            (rows - 1)
                .checked_mul(rs)?
                .checked_add((cols - 1).checked_mul(cs)?)?
                .checked_add(1)
        };
        if self.k > 0 {
            let a_need = extent(rows, self.a_rs, self.k, self.a_cs);
            let b_need = extent(self.k, self.b_rs, cols, 1);
            assert!(
                a_need.is_some_and(|n| n <= self.a.len())
                    && b_need.is_some_and(|n| n <= self.b.len()),
                "gemm microkernel: operand slice too short"
            );
        }
        assert!(
            extent(rows, self.ldc, cols, 1).is_some_and(|n| n <= out_len),
            "gemm microkernel: output slice too short"
        );
        assert!(
            self.epi.bias.is_none_or(|b| b.len() >= cols),
            "gemm microkernel: bias slice too short"
        );
    }
}

/// An `MR x NR` register-tiled microkernel. Its methods are compiled once per epilogue
/// (`BIAS`: add `t.epi`'s bias, `RELU`: then ReLU, both on the stored values), so plain
/// `sgemm`'s instance (`false, false`) is the kernel without an epilogue; [`run_tile`] and
/// [`run_tile_edge`] pick the instance from `t.epi`, once per tile.
///
/// [`run_tile`]: Microkernel::run_tile
/// [`run_tile_edge`]: Microkernel::run_tile_edge
pub(crate) trait Microkernel<const MR: usize, const NR: usize>: Copy {
    /// The ISA's vector, which the packing routines use: a value of `Self` exists only on a
    /// CPU that supports it.
    type Vector: F32x;

    /// `out[i * ldc + j] = alpha * sum_p A(i, p) * B(p, j) + beta * out[i * ldc + j]` for
    /// `i < MR`, `j < NR`, `p < k`, then the epilogue. With `beta == 0` it never reads `out`.
    /// It panics (before any access) if a slice is too short for these indices, or if
    /// `BIAS` and `t.epi` has no bias of `NR` elements.
    fn tile<const BIAS: bool, const RELU: bool>(self, t: Tile<'_>, out: &mut [f32]);

    /// [`tile`](Microkernel::tile) restricted to the first `rows <= MR` rows and
    /// `cols <= NR` columns: reads only those rows of A and columns of B (and of the bias), and
    /// reads and writes only that part of `out` (so `out` needs `(rows - 1) * ldc + cols`
    /// elements).
    ///
    /// This default copies the operands into zero-padded buffers on the stack, `EDGE_K` steps
    /// of k at a time, and runs the whole tile into a stack tile; an ISA with masked loads and
    /// stores overrides it to work in place.
    #[inline(always)]
    fn tile_edge<const BIAS: bool, const RELU: bool>(
        self,
        t: Tile<'_>,
        rows: usize,
        cols: usize,
        out: &mut [f32],
    ) {
        const EDGE_K: usize = 64;
        let bias: &[f32] = if BIAS {
            t.epi.bias.expect("gemm edge tile: epilogue without a bias")
        } else {
            &[]
        };
        let mut acc = [[0.0f32; NR]; MR];
        let mut a_copy = [[0.0f32; MR]; EDGE_K];
        let mut b_copy = [[0.0f32; NR]; EDGE_K];
        for p0 in (0..t.k).step_by(EDGE_K) {
            let steps = EDGE_K.min(t.k - p0);
            for (p, (ac, bc)) in a_copy.iter_mut().zip(&mut b_copy).take(steps).enumerate() {
                for (i, x) in ac.iter_mut().enumerate().take(rows) {
                    *x = t.a[i * t.a_rs + (p0 + p) * t.a_cs];
                }
                bc[..cols].copy_from_slice(&t.b[(p0 + p) * t.b_rs..][..cols]);
            }
            let copied = Tile {
                k: steps,
                a: a_copy.as_flattened(),
                a_rs: 1,
                a_cs: MR,
                b: b_copy.as_flattened(),
                b_rs: NR,
                ldc: NR,
                alpha: 1.0,
                beta: if p0 == 0 { 0.0 } else { 1.0 },
                epi: Epilogue::NONE,
            };
            self.tile::<false, false>(copied, acc.as_flattened_mut());
        }
        for (i, sums) in acc.iter().enumerate().take(rows) {
            let row = &mut out[i * t.ldc..][..cols];
            for (j, (x, &v)) in row.iter_mut().zip(sums).enumerate() {
                let y = if t.beta == 0.0 {
                    t.alpha * v
                } else {
                    t.alpha * v + t.beta * *x
                };
                *x = finish_scalar::<BIAS, RELU>(y, bias, j);
            }
        }
    }

    /// [`tile`](Microkernel::tile) for the epilogue `t.epi` asks for.
    #[inline(always)]
    fn run_tile(self, t: Tile<'_>, out: &mut [f32]) {
        match (t.epi.bias.is_some(), t.epi.relu) {
            (false, false) => self.tile::<false, false>(t, out),
            (false, true) => self.tile::<false, true>(t, out),
            (true, false) => self.tile::<true, false>(t, out),
            (true, true) => self.tile::<true, true>(t, out),
        }
    }

    /// [`tile_edge`](Microkernel::tile_edge) for the epilogue `t.epi` asks for.
    #[inline(always)]
    fn run_tile_edge(self, t: Tile<'_>, rows: usize, cols: usize, out: &mut [f32]) {
        match (t.epi.bias.is_some(), t.epi.relu) {
            (false, false) => self.tile_edge::<false, false>(t, rows, cols, out),
            (false, true) => self.tile_edge::<false, true>(t, rows, cols, out),
            (true, false) => self.tile_edge::<true, false>(t, rows, cols, out),
            (true, true) => self.tile_edge::<true, true>(t, rows, cols, out),
        }
    }
}

/// The bias of a tile's columns as a pointer for the SIMD stores: `t.epi`'s when `BIAS`
/// (panics if there is none), else null (never read).
#[inline(always)]
pub(crate) fn bias_ptr<const BIAS: bool>(epi: &Epilogue<'_>) -> *const f32 {
    if BIAS {
        epi.bias
            .expect("gemm microkernel: epilogue without a bias")
            .as_ptr()
    } else {
        core::ptr::null()
    }
}

/// The epilogue on one stored element of column `j`: `y + bias[j]` when `BIAS`, then ReLU
/// when `RELU`, as `Kernels::bias_add` and the ReLU kernels compute them.
#[inline(always)]
pub(crate) fn finish_scalar<const BIAS: bool, const RELU: bool>(
    y: f32,
    bias: &[f32],
    j: usize,
) -> f32 {
    let y = if BIAS { y + bias[j] } else { y };
    if RELU {
        crate::relu::scalar::relu(y)
    } else {
        y
    }
}

/// The epilogue on one stored vector: `y + bias` when `BIAS`, then ReLU (the ReLU kernels'
/// own [`relu_lanes`](crate::relu::relu_lanes)) when `RELU`.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn finish<V: F32x, const BIAS: bool, const RELU: bool>(y: V, bias: V) -> V {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe {
        let y = if BIAS { y.add(bias) } else { y };
        if RELU {
            crate::relu::relu_lanes(y)
        } else {
            y
        }
    }
}

/// Writes an accumulator tile of `R` rows and `W` vectors:
/// `c[i * ldc + w * V::LANES + l] = alpha * acc[i][w][l] + beta * old` (`beta == 0`: C is
/// not read), then the epilogue ([`finish`], `bias` the tile's columns'). The test of beta
/// stays outside the loops, so the accumulators are stored straight from registers.
///
/// # Safety
/// The CPU supports `V`'s ISA; `c[i * ldc + j]` is in bounds for `i < R`, `j < W * V::LANES`,
/// and so is `bias[j]` when `BIAS`.
#[inline(always)]
pub(crate) unsafe fn store_tile<
    V: F32x,
    const R: usize,
    const W: usize,
    const BIAS: bool,
    const RELU: bool,
>(
    acc: &[[V; W]; R],
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
) {
    // SAFETY: the caller guarantees the ISA and that every address below is in bounds.
    unsafe {
        let va = V::splat(alpha);
        let mut vbias = [V::zero(); W];
        if BIAS {
            for (w, x) in vbias.iter_mut().enumerate() {
                *x = V::load(bias.add(w * V::LANES));
            }
        }
        if beta == 0.0 {
            for (i, row) in acc.iter().enumerate() {
                for (w, &x) in row.iter().enumerate() {
                    let y = finish::<V, BIAS, RELU>(x.mul(va), vbias[w]);
                    y.store(c.add(i * ldc + w * V::LANES));
                }
            }
        } else {
            let vb = V::splat(beta);
            for (i, row) in acc.iter().enumerate() {
                for (w, &x) in row.iter().enumerate() {
                    let cv = c.add(i * ldc + w * V::LANES);
                    let y = finish::<V, BIAS, RELU>(x.mul_add(va, V::load(cv).mul(vb)), vbias[w]);
                    y.store(cv);
                }
            }
        }
    }
}
