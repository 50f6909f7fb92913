//! Packing: copies a block of `op(A)` or `op(B)` into the order the microkernel reads it, so the
//! inner loop streams both operands with unit stride whatever their transposes and leading
//! dimensions. Partial slivers are zero-padded to the full tile, which lets edge tiles run the
//! same microkernel (their extra rows and columns are computed and then discarded).

use super::Transpose;
use crate::simd::F32x;

/// The widest vector of any ISA, in lanes (the stack block of [`interleave`]).
const MAX_LANES: usize = 16;

/// Packs `op(A)[i0 .. i0 + mc, p0 .. p0 + kc]` into `MR`-row slivers: sliver `s` holds element
/// `(i, p)` (relative to the block) at `s * MR * kc + p * MR + (i - s * MR)`. Rows past `mc` in
/// the last sliver are zero.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn pack_a<V: F32x, const MR: usize>(
    trans: Transpose,
    a: &[f32],
    lda: usize,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for (s, sliver) in dst[..mc.div_ceil(MR) * MR * kc]
        .chunks_exact_mut(MR * kc)
        .enumerate()
    {
        let first = i0 + s * MR;
        let rows = MR.min(i0 + mc - first);
        match trans {
            // A(i, p) = a[i * lda + p]: each row of A is contiguous.
            // SAFETY: the caller guarantees `V`'s ISA.
            Transpose::No => unsafe { interleave::<V, MR>(a, lda, first, rows, p0, kc, sliver) },
            // A(i, p) = a[p * lda + i]: MR consecutive elements per p.
            Transpose::Yes => {
                for (p, col) in sliver.chunks_exact_mut(MR).enumerate() {
                    let src = &a[(p0 + p) * lda + first..][..rows];
                    col[..rows].copy_from_slice(src);
                    col[rows..].fill(0.0);
                }
            }
        }
    }
}

/// Packs `op(B)[p0 .. p0 + kc, j0 .. j0 + nc]` into `NR`-column slivers: sliver `s` holds
/// element `(p, j)` (relative to the block) at `s * NR * kc + p * NR + (j - s * NR)`. Columns
/// past `nc` in the last sliver are zero.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn pack_b<V: F32x, const NR: usize>(
    trans: Transpose,
    b: &[f32],
    ldb: usize,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    let dst = &mut dst[..nc.div_ceil(NR) * NR * kc];
    match trans {
        // B(p, j) = b[p * ldb + j]: walk B row by row (one sequential stream the hardware
        // prefetcher follows), dealing each row's NR-wide pieces out to the slivers.
        Transpose::No => {
            for p in 0..kc {
                let row = &b[(p0 + p) * ldb + j0..][..nc];
                for (piece, sliver) in row.chunks(NR).zip(dst.chunks_exact_mut(NR * kc)) {
                    let out = &mut sliver[p * NR..][..NR];
                    out[..piece.len()].copy_from_slice(piece);
                    out[piece.len()..].fill(0.0);
                }
            }
        }
        // B(p, j) = b[j * ldb + p]: each column of op(B) is contiguous.
        Transpose::Yes => {
            for (s, sliver) in dst.chunks_exact_mut(NR * kc).enumerate() {
                let first = j0 + s * NR;
                let cols = NR.min(j0 + nc - first);
                // SAFETY: the caller guarantees `V`'s ISA.
                unsafe { interleave::<V, NR>(b, ldb, first, cols, p0, kc, sliver) };
            }
        }
    }
}

/// Interleaves `count <= W` contiguous rows of `src` (row `r` is
/// `src[(first + r) * ld + p0..][..kc]`) into one sliver: element `p` of row `r` goes to
/// `sliver[p * W + r]`, and the lanes `r >= count` are zero.
///
/// A whole sliver whose width is a multiple of `V::LANES` goes through in-register transposes:
/// `LANES` rows of `LANES` steps are loaded a vector per row and stored transposed, a vector
/// per step. The steps past the last whole block, and partial or narrower slivers, go element
/// by element, each row read contiguously and written down its lane, so every access is in
/// bounds by construction.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn interleave<V: F32x, const W: usize>(
    src: &[f32],
    ld: usize,
    first: usize,
    count: usize,
    p0: usize,
    kc: usize,
    sliver: &mut [f32],
) {
    let sliver = &mut sliver[..W * kc];
    let lanes = V::LANES;
    let mut done = 0;
    if count == W && W.is_multiple_of(lanes) && lanes <= MAX_LANES {
        let rows: [&[f32]; W] = std::array::from_fn(|r| &src[(first + r) * ld + p0..][..kc]);
        done = kc - kc % lanes;
        // SAFETY: the caller guarantees the ISA. Loads: `p + lanes <= done <= kc`, the length
        // of every row. Stores: block `(g, p)` writes `lanes` floats at
        // `(p + q) * W + g * lanes` for `q < lanes`; the last ends at
        // `(p + lanes - 1) * W + W <= kc * W`, the sliver's length.
        unsafe {
            let mut block = [V::zero(); MAX_LANES];
            for (g, group) in rows.chunks_exact(lanes).enumerate() {
                for p in (0..done).step_by(lanes) {
                    for (v, row) in block.iter_mut().zip(group) {
                        *v = V::load(row.as_ptr().add(p));
                    }
                    let out = sliver.as_mut_ptr().add(p * W + g * lanes);
                    V::store_transposed(block.as_ptr(), out, W, lanes);
                }
            }
        }
    }
    if done == kc {
        return;
    }
    for r in 0..W {
        let lane = sliver[done * W + r..].iter_mut().step_by(W);
        if r < count {
            let row = &src[(first + r) * ld + p0 + done..][..kc - done];
            for (x, &v) in lane.zip(row) {
                *x = v;
            }
        } else {
            lane.for_each(|x| *x = 0.0);
        }
    }
}
