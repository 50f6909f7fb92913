//! The blocked GEMM driver shared by every SIMD instruction set: cache blocking, packing and the
//! choice of which operand to pack, around an ISA's register-tiled [`Microkernel`].
//!
//! Safe code only: the microkernel checks the extent of every slice it is given before it
//! touches memory, so nothing here can cause an out-of-bounds access.

use super::pack::{pack_a, pack_b};
use super::{GemmArgs, Transpose};
use std::cell::RefCell;

/// Block sizes of one instruction set (see the module docs of `gemm` for why these values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Rows of the register tile (the height of a packed A sliver).
    pub mr: usize,
    /// Columns of the register tile (the width of a packed B sliver).
    pub nr: usize,
    /// Depth of a k block: one A sliver (`mr x kc`) and one B sliver (`kc x nr`) live in L1.
    pub kc: usize,
    /// Rows of an m block: the packed `mc x kc` block of A lives in L2. A multiple of `mr`.
    pub mc: usize,
    /// Columns of an n block: the packed `kc x nc` panel of B lives in L3. A multiple of `nr`.
    pub nc: usize,
}

/// An `MR x NR` register-tiled microkernel.
///
/// `tile` computes `out[i * ldc + j] = alpha * sum_p A(i, p) * B(p, j) + beta * out[i * ldc + j]`
/// for `i < MR`, `j < NR`, `p < k`, where `A(i, p) = a[i * a_rs + p * a_cs]` and
/// `B(p, j) = b[p * b_rs + j]`. With `beta == 0` it never reads `out`. It panics (before any
/// access) if a slice is too short for these indices.
pub(crate) trait Microkernel<const MR: usize, const NR: usize>: Copy {
    #[allow(clippy::too_many_arguments)]
    fn tile(
        self,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        b: &[f32],
        b_rs: usize,
        out: &mut [f32],
        ldc: usize,
        alpha: f32,
        beta: f32,
    );
}

/// Panics unless every index a `tile` call reads or writes lies inside its slice. Microkernels
/// call this first: it is what makes their unchecked SIMD loads sound.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn assert_tile_fits<const MR: usize, const NR: usize>(
    k: usize,
    a_len: usize,
    a_rs: usize,
    a_cs: usize,
    b_len: usize,
    b_rs: usize,
    out_len: usize,
    ldc: usize,
) {
    // Largest index touched plus one, or None on overflow.
    let extent = |rows: usize, rs: usize, cols: usize, cs: usize| {
        (rows - 1)
            .checked_mul(rs)?
            .checked_add((cols - 1).checked_mul(cs)?)?
            .checked_add(1)
    };
    if k > 0 {
        let a_need = extent(MR, a_rs, k, a_cs);
        let b_need = extent(k, b_rs, NR, 1);
        assert!(
            a_need.is_some_and(|n| n <= a_len) && b_need.is_some_and(|n| n <= b_len),
            "gemm microkernel: operand slice too short"
        );
    }
    let out_need = extent(MR, ldc, NR, 1);
    assert!(
        out_need.is_some_and(|n| n <= out_len),
        "gemm microkernel: output slice too short"
    );
}

/// Packing buffers of this thread. They grow to the largest size needed and are then reused,
/// so a steady stream of GEMM calls allocates nothing.
struct Workspace {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = const { RefCell::new(Workspace { a: Vec::new(), b: Vec::new() }) };
}

/// A `len`-element window of `buf` starting on a 64-byte boundary (a cache line), growing `buf`
/// when it is too small. Packed panels are streamed by the microkernel; aligned slivers never
/// straddle cache lines.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const ALIGN_FLOATS: usize = 16;
    if buf.len() < len + ALIGN_FLOATS {
        *buf = vec![0.0; len + ALIGN_FLOATS];
    }
    let skip = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS - 1);
    &mut buf[skip..skip + len]
}

/// `total` split into equal-sized blocks of at most `max` (a multiple of `multiple`), each a
/// multiple of `multiple`: avoids a thin last block (k = 257 with kc = 256 gives 2 x 129, not
/// 256 + 1, so the second pass over C is not wasted on one rank-1 update).
fn balanced_block(total: usize, max: usize, multiple: usize) -> usize {
    let blocks = total.div_ceil(max);
    total.div_ceil(blocks).next_multiple_of(multiple).min(max)
}

/// `C = beta * C` over an `m x n` window (`beta == 0` writes zeros without reading).
fn scale_c(m: usize, n: usize, beta: f32, c: &mut [f32], ldc: usize) {
    for row in c.chunks_mut(ldc).take(m) {
        let row = &mut row[..n];
        if beta == 0.0 {
            row.fill(0.0);
        } else if beta != 1.0 {
            row.iter_mut().for_each(|x| *x *= beta);
        }
    }
}

/// Which operands are read in place instead of packed.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Read B where it lies (`transb == No` only): the microkernel loads its `NR`-wide rows
    /// with stride `ldb`. Wins when every B sliver is used by only one m block, so packing
    /// would copy B once more than it is read.
    direct_b: bool,
    /// Read A where it lies (broadcasts with strides `lda` and 1): wins when there are so few B
    /// slivers that packing A would cost as much as the multiply.
    direct_a: bool,
}

fn plan(args: &GemmArgs<'_>, bl: Blocking) -> Plan {
    Plan {
        direct_b: args.transb == Transpose::No && args.m <= bl.mc,
        direct_a: args.n <= 2 * bl.nr,
    }
}

/// `C = alpha * op(A) * op(B) + beta * C` with the arguments already checked against their
/// lengths (see [`Kernels::sgemm`](crate::Kernels::sgemm)); `m > 0` and `n > 0`.
#[inline(always)]
pub(crate) fn gemm<K: Microkernel<MR, NR>, const MR: usize, const NR: usize>(
    kernel: K,
    bl: Blocking,
    args: &GemmArgs<'_>,
    c: &mut [f32],
) {
    debug_assert!(bl.mr == MR && bl.nr == NR && bl.mc % MR == 0 && bl.nc % NR == 0);
    let GemmArgs {
        m, n, k, beta, ldc, ..
    } = *args;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    let plan = plan(args, bl);
    WORKSPACE.with(|ws| match ws.try_borrow_mut() {
        Ok(mut ws) => {
            let Workspace { a, b } = &mut *ws;
            blocked(kernel, bl, plan, args, c, a, b);
        }
        // Only reachable if a kernel re-entered GEMM on this thread; use fresh buffers.
        Err(_) => blocked(kernel, bl, plan, args, c, &mut Vec::new(), &mut Vec::new()),
    });
}

/// The five loops around the microkernel (Goto / BLIS order): n blocks, k blocks (pack B), m
/// blocks (pack A), then `NR`-wide slivers of B and `MR`-tall slivers of A.
#[inline(always)]
fn blocked<K: Microkernel<MR, NR>, const MR: usize, const NR: usize>(
    kernel: K,
    bl: Blocking,
    plan: Plan,
    args: &GemmArgs<'_>,
    c: &mut [f32],
    a_buf: &mut Vec<f32>,
    b_buf: &mut Vec<f32>,
) {
    let GemmArgs {
        transa,
        transb,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        ldc,
    } = *args;
    let kc_max = balanced_block(k, bl.kc, 1);
    let mc_max = balanced_block(m, bl.mc, MR);
    let nc_max = balanced_block(n, bl.nc, NR);
    // Packed B holds a whole kc x nc panel, or (direct B) only the one partial sliver at the
    // right edge of C. Packed A holds an mc x kc block, or (direct A) one partial sliver.
    let b_len = if plan.direct_b {
        kc_max * NR
    } else {
        kc_max * nc_max
    };
    let a_len = if plan.direct_a {
        MR * kc_max
    } else {
        mc_max * kc_max
    };
    let bpack = aligned(b_buf, b_len);
    let apack = aligned(a_buf, a_len);

    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            // Later k blocks add to what the first one wrote.
            let beta = if pc == 0 { beta } else { 1.0 };
            let edge_cols = nc % NR;
            if !plan.direct_b {
                pack_b::<NR>(transb, b, ldb, pc, kc, jc, nc, bpack);
            } else if edge_cols != 0 {
                pack_b::<NR>(
                    transb,
                    b,
                    ldb,
                    pc,
                    kc,
                    jc + nc - edge_cols,
                    edge_cols,
                    bpack,
                );
            }
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                let edge_rows = mc % MR;
                if !plan.direct_a {
                    pack_a::<MR>(transa, a, lda, ic, mc, pc, kc, apack);
                } else if edge_rows != 0 {
                    pack_a::<MR>(
                        transa,
                        a,
                        lda,
                        ic + mc - edge_rows,
                        edge_rows,
                        pc,
                        kc,
                        apack,
                    );
                }
                for jr in (0..nc).step_by(NR) {
                    let nr = NR.min(nc - jr);
                    let (b_tile, b_rs): (&[f32], usize) = if !plan.direct_b {
                        (&bpack[jr * kc..][..kc * NR], NR)
                    } else if nr == NR {
                        (&b[pc * ldb + jc + jr..], ldb)
                    } else {
                        (&bpack[..kc * NR], NR)
                    };
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let (a_tile, a_rs, a_cs): (&[f32], usize, usize) = if !plan.direct_a {
                            (&apack[ir * kc..][..MR * kc], 1, MR)
                        } else if mr < MR {
                            (&apack[..MR * kc], 1, MR)
                        } else {
                            let row = ic + ir;
                            match transa {
                                Transpose::No => (&a[row * lda + pc..], lda, 1),
                                Transpose::Yes => (&a[pc * lda + row..], 1, lda),
                            }
                        };
                        let c_at = (ic + ir) * ldc + jc + jr;
                        if mr == MR && nr == NR {
                            let out = &mut c[c_at..][..(MR - 1) * ldc + NR];
                            kernel
                                .tile(kc, a_tile, a_rs, a_cs, b_tile, b_rs, out, ldc, alpha, beta);
                        } else {
                            // Edge tile: the zero-padded slivers give a whole tile; keep the
                            // part inside C.
                            let mut tile = [[0.0f32; NR]; MR];
                            let flat = tile.as_flattened_mut();
                            kernel.tile(kc, a_tile, a_rs, a_cs, b_tile, b_rs, flat, NR, 1.0, 0.0);
                            for (i, t) in tile.iter().enumerate().take(mr) {
                                let row = &mut c[c_at + i * ldc..][..nr];
                                for (x, &v) in row.iter_mut().zip(t) {
                                    *x = if beta == 0.0 {
                                        alpha * v
                                    } else {
                                        alpha * v + beta * *x
                                    };
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
