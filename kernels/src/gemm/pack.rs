//! Packing: copies a block of `op(A)` or `op(B)` into the order the microkernel reads it, so the
//! inner loop streams both operands with unit stride whatever their transposes and leading
//! dimensions. Partial slivers are zero-padded to the full tile, which lets edge tiles run the
//! same microkernel (their extra rows and columns are computed and then discarded).

use super::Transpose;

/// Packs `op(A)[i0 .. i0 + mc, p0 .. p0 + kc]` into `MR`-row slivers: sliver `s` holds element
/// `(i, p)` (relative to the block) at `s * MR * kc + p * MR + (i - s * MR)`. Rows past `mc` in
/// the last sliver are zero.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn pack_a<const MR: usize>(
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
            Transpose::No => interleave::<MR>(a, lda, first, rows, p0, kc, sliver),
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
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn pack_b<const NR: usize>(
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
                interleave::<NR>(b, ldb, first, cols, p0, kc, sliver);
            }
        }
    }
}

/// Interleaves `count <= W` contiguous rows of `src` (row `r` is
/// `src[(first + r) * ld + p0..][..kc]`) into one sliver: element `p` of row `r` goes to
/// `sliver[p * W + r]`, and the lanes `r >= count` are zero.
#[inline(always)]
fn interleave<const W: usize>(
    src: &[f32],
    ld: usize,
    first: usize,
    count: usize,
    p0: usize,
    kc: usize,
    sliver: &mut [f32],
) {
    if count == W {
        // Whole sliver: one bounds check per row, then a gather per step of k.
        let rows: [&[f32]; W] = std::array::from_fn(|r| &src[(first + r) * ld + p0..][..kc]);
        for (p, lanes) in sliver.chunks_exact_mut(W).enumerate() {
            for (x, row) in lanes.iter_mut().zip(&rows) {
                *x = row[p];
            }
        }
    } else {
        for (p, lanes) in sliver.chunks_exact_mut(W).enumerate() {
            for (r, x) in lanes.iter_mut().enumerate() {
                *x = if r < count {
                    src[(first + r) * ld + p0 + p]
                } else {
                    0.0
                };
            }
        }
    }
}
