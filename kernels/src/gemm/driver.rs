//! The blocked GEMM driver shared by every SIMD instruction set: cache blocking, packing and the
//! choice of which operand to pack, around an ISA's register-tiled [`Microkernel`].
//!
//! Safe code only: the microkernel checks the extent of every slice it is given before it
//! touches memory (`Tile::assert_fits`), so nothing here can cause an out-of-bounds access.

use super::pack::{pack_a, pack_b};
use super::tile::{Microkernel, Tile};
use super::{scalar, Epilogue, GemmArgs, Transpose};
use std::cell::Cell;

/// Block sizes of one instruction set. The tile is the largest that fits the register file
/// with enough independent FMA chains to cover latency x throughput (see each ISA file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Rows of the register tile (the height of a packed A sliver).
    pub mr: usize,
    /// Columns of the register tile (the width of a packed B sliver).
    pub nr: usize,
    /// Depth of a k block: one A sliver (`mr x kc`) and one B sliver (`kc x nr`) live in L1
    /// (AVX2, NEON); on AVX-512 the sliver streams from L2 and `kc` is set by the number of
    /// passes over C.
    pub kc: usize,
    /// Rows of an m block: the packed `mc x kc` block of A lives in L2. A multiple of `mr`.
    pub mc: usize,
    /// Columns of an n block: the packed `kc x nc` panel of B lives in L3. A multiple of `nr`.
    pub nc: usize,
}

/// Packing buffers of this thread. They grow to the largest size needed and are then reused,
/// so a steady stream of GEMM calls allocates nothing.
#[derive(Default)]
struct Workspace {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static WORKSPACE: Cell<Workspace> = const { Cell::new(Workspace { a: Vec::new(), b: Vec::new() }) };
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
pub(crate) fn balanced_block(total: usize, max: usize, multiple: usize) -> usize {
    let blocks = total.div_ceil(max);
    total.div_ceil(blocks).next_multiple_of(multiple).min(max)
}

/// `C = beta * C` over an `m x n` window (`beta == 0` writes zeros without reading), then the
/// epilogue: what `k == 0` computes.
fn scale_c(m: usize, n: usize, beta: f32, c: &mut [f32], ldc: usize, epi: &Epilogue<'_>) {
    for row in c.chunks_mut(ldc).take(m) {
        let row = &mut row[..n];
        if beta == 0.0 {
            row.fill(0.0);
        } else if beta != 1.0 {
            row.iter_mut().for_each(|x| *x *= beta);
        }
    }
    scalar::epilogue(m, n, c, ldc, epi.bias, epi.relu);
}

/// The deepest k block that walks C row panel by row panel (see [`rows_outer`]).
const ROWS_OUTER_MAX_KC: usize = 32;
/// The largest packed B panel (floats, 256 KiB) that [`rows_outer`] lets every row panel
/// re-read from L2.
const ROWS_OUTER_MAX_PANEL: usize = 64 * 1024;

/// Whether the tiles of an m block run row panel by row panel (each `MR`-tall panel of C
/// left to right across the whole n block) instead of sliver by sliver (down each
/// `NR`-wide column of C). With short k blocks a tile is mostly its pass over C, so C's
/// order decides the speed: row panels write each row of C front to back, which the hardware
/// prefetcher follows, while a column walk jumps `ldc` floats per row. B's whole panel is
/// then re-read per row panel, so it must stay small enough for L2.
pub(crate) fn rows_outer(kc: usize, nc: usize, mc: usize, mr: usize) -> bool {
    mc > mr && kc <= ROWS_OUTER_MAX_KC && kc * nc <= ROWS_OUTER_MAX_PANEL
}

/// The k block for B read in place with rows on distinct pages (see `blocked`).
const DIRECT_B_FAR_ROWS_KC: usize = 48;

/// B read in place whatever its leading dimension when it has at most this many floats
/// (32 KiB): all of it then stays in L1 (no set conflicts to avoid), and copying it would be
/// a large share of so small a multiply (64 x 64 x 64: 4096 floats copied for 64 per FMA
/// row).
const DIRECT_B_SMALL_FLOATS: usize = 8 * 1024;

/// The k block for B read in place (rows closer than 4 KiB) when more than one row tile
/// uses each sliver (see `k_block`).
const DIRECT_B_SHARED_KC: usize = 128;

/// Which operands are read in place instead of packed.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Read B where it lies (`transb == No` only): the microkernel loads its `NR`-wide rows
    /// with stride `ldb` and prefetches ahead.
    direct_b: bool,
    /// Read A where it lies (broadcasts with strides `lda` and 1).
    direct_a: bool,
}

/// The largest m block for k blocks of `kc`: `mc` rows at full depth, more when k is short,
/// keeping the packed A block (`mc x kc` floats) at the size L2 was budgeted for. (A column
/// gradient W^T dY has k = 16 and m = 150: one m block, not two.)
fn m_block_limit(bl: Blocking, kc: usize) -> usize {
    let rows = bl.mc * bl.kc / kc.max(1);
    (rows - rows % bl.mr).max(bl.mc)
}

fn plan(args: &GemmArgs<'_>, bl: Blocking) -> Plan {
    let mc_limit = m_block_limit(bl, balanced_block(args.k, bl.kc, 1));
    // B in place pays when m fits one m block (each B sliver then serves one A block, so
    // packing would copy B once more than the multiply reads it) and either m is tiny (a few
    // row panels cannot amortise a copy) or ldb is not a multiple of 64 floats: a sliver of
    // rows 256 B apart (or a power-of-two multiple) falls into a handful of L1 sets and
    // evicts itself, which packing avoids.
    let tiny_m = args.m <= 4 * bl.mr;
    let small_b = args.k * args.n <= DIRECT_B_SMALL_FLOATS;
    let direct_b = args.transb == Transpose::No
        && args.m <= mc_limit
        && (tiny_m || small_b || !args.ldb.is_multiple_of(64));
    // A in place pays when n is small: packing costs ~1.5 cycles per element of A, the
    // multiply ~n/32, so below n ~ 512 the copy is a visible share (48/n). Broadcasting from
    // rows `lda` apart touches as many lines as a packed sliver, unless rows 4 KiB apart pile
    // into the same cache sets: then pack. Transposed A in place (MR floats per line, one line
    // per k step) only when n is at most two slivers (conv1's weight gradient, 6 x 50176 x 25).
    let direct_a = args.n <= 2 * bl.nr
        || (args.transa == Transpose::No && args.n <= 512 && !args.lda.is_multiple_of(1024));
    Plan { direct_b, direct_a }
}

/// `C = alpha * op(A) * op(B) + beta * C` with the arguments already checked against their
/// lengths (see [`Kernels::sgemm`](crate::Kernels::sgemm)); `m > 0` and `n > 0`. With `EPI`
/// the stores of the last k block apply `args.epilogue`; without, it is ignored, and this is
/// the driver with no trace of an epilogue (compiled separately, so plain `sgemm` keeps its
/// own register allocation).
#[inline(always)]
pub(crate) fn gemm<K: Microkernel<MR, NR>, const MR: usize, const NR: usize, const EPI: bool>(
    kernel: K,
    bl: Blocking,
    args: &GemmArgs<'_>,
    c: &mut [f32],
) {
    debug_assert!(
        bl.mr == MR && bl.nr == NR && bl.mc.is_multiple_of(MR) && bl.nc.is_multiple_of(NR)
    );
    let GemmArgs {
        m, n, k, beta, ldc, ..
    } = *args;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        let epi = if EPI { args.epilogue } else { Epilogue::NONE };
        scale_c(m, n, beta, c, ldc, &epi);
        return;
    }
    let plan = plan(args, bl);
    // Borrow the buffers by moving them out (a nested call would find empty ones) rather than
    // running the loops inside a `with` closure: a closure is a separate function without this
    // ISA's target features, where the SIMD intrinsics would not inline.
    let mut ws = WORKSPACE.take();
    blocked::<K, MR, NR, EPI>(kernel, bl, plan, args, c, &mut ws.a, &mut ws.b);
    WORKSPACE.set(ws);
}

/// The k block `blocked` uses.
fn k_block(bl: Blocking, plan: Plan, args: &GemmArgs<'_>) -> usize {
    // B read in place with rows 4 KiB or more apart: every row of a sliver is on its own
    // page, and kc of them overflow the L1 data TLB (64 entries); shorter k blocks keep a
    // sliver's pages resident.
    // B read in place with rows closer together, used by more than one row tile: its sliver
    // (kc rows, each 192 B spread over up to four lines) should stay in L1 while the row
    // tiles pass, which kc = 384 overflows.
    let kc_limit = if plan.direct_b && args.ldb >= 1024 {
        DIRECT_B_FAR_ROWS_KC
    } else if plan.direct_b && args.m > bl.mr {
        bl.kc.min(DIRECT_B_SHARED_KC)
    } else {
        bl.kc
    };
    balanced_block(args.k, kc_limit, 1)
}

/// Whether `gemm` with these arguments walks C row panel by row panel (see [`rows_outer`]):
/// the microkernel's look-ahead prefetch of the tile below is useless then (only AVX-512
/// has that prefetch).
#[cfg(target_arch = "x86_64")]
pub(crate) fn walks_row_panels(bl: Blocking, args: &GemmArgs<'_>) -> bool {
    let kc = k_block(bl, plan(args, bl), args);
    let mc = balanced_block(args.m, m_block_limit(bl, kc), bl.mr);
    rows_outer(kc, balanced_block(args.n, bl.nc, bl.nr), mc, bl.mr)
}

/// The five loops around the microkernel (Goto / BLIS order): n blocks, k blocks (pack B), m
/// blocks (pack A), then `NR`-wide slivers of B and `MR`-tall slivers of A.
#[inline(always)]
fn blocked<K: Microkernel<MR, NR>, const MR: usize, const NR: usize, const EPI: bool>(
    kernel: K,
    bl: Blocking,
    plan: Plan,
    args: &GemmArgs<'_>,
    c: &mut [f32],
    a_buf: &mut Vec<f32>,
    b_buf: &mut Vec<f32>,
) {
    let GemmArgs {
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
        ..
    } = *args;
    let kc_max = k_block(bl, plan, args);
    let mc_max = balanced_block(m, m_block_limit(bl, kc_max), MR);
    let nc_max = balanced_block(n, bl.nc, NR);
    // Packed B holds a kc x nc panel, packed A an mc x kc block (nothing when read in place).
    let b_len = if plan.direct_b { 0 } else { kc_max * nc_max };
    let a_len = if plan.direct_a { 0 } else { mc_max * kc_max };
    let bpack = aligned(b_buf, b_len);
    let apack = aligned(a_buf, a_len);

    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            // Later k blocks add to what the first one wrote; the last one stores C's final
            // values, so it applies the epilogue.
            let beta = if pc == 0 { args.beta } else { 1.0 };
            let last_k = pc + kc == k;
            if !plan.direct_b {
                // SAFETY: `kernel` exists, so the CPU supports `K::Vector`'s ISA.
                unsafe { pack_b::<K::Vector, NR>(args.transb, args.b, ldb, pc, kc, jc, nc, bpack) };
            }
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                if !plan.direct_a {
                    // SAFETY: as for `pack_b`.
                    unsafe {
                        pack_a::<K::Vector, MR>(args.transa, args.a, lda, ic, mc, pc, kc, apack)
                    };
                }
                let (col_tiles, row_tiles) = (nc.div_ceil(NR), mc.div_ceil(MR));
                let by_rows = rows_outer(kc_max, nc_max, mc, MR);
                let (outer, inner) = if by_rows {
                    (row_tiles, col_tiles)
                } else {
                    (col_tiles, row_tiles)
                };
                for o in 0..outer {
                    for q in 0..inner {
                        let (jt, it) = if by_rows { (q, o) } else { (o, q) };
                        let (jr, ir) = (jt * NR, it * MR);
                        let (b, b_rs): (&[f32], usize) = if plan.direct_b {
                            (&args.b[pc * ldb + jc + jr..], ldb)
                        } else {
                            (&bpack[jr * kc..][..kc * NR], NR)
                        };
                        let row = ic + ir;
                        let (a, a_rs, a_cs): (&[f32], usize, usize) = if !plan.direct_a {
                            (&apack[ir * kc..][..MR * kc], 1, MR)
                        } else {
                            match args.transa {
                                Transpose::No => (&args.a[row * lda + pc..], lda, 1),
                                Transpose::Yes => (&args.a[pc * lda + row..], 1, lda),
                            }
                        };
                        let tile = Tile {
                            k: kc,
                            a,
                            a_rs,
                            a_cs,
                            b,
                            b_rs,
                            ldc,
                            alpha: args.alpha,
                            beta,
                            epi: if EPI && last_k {
                                Epilogue {
                                    bias: args.epilogue.bias.map(|b| &b[jc + jr..]),
                                    relu: args.epilogue.relu,
                                }
                            } else {
                                Epilogue::NONE
                            },
                        };
                        let out = &mut c[row * ldc + jc + jr..];
                        let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                        if rows == MR && cols == NR && !plan.direct_a && !plan.direct_b {
                            // Both packed: constant strides, so this call site compiles to a
                            // microkernel with fixed offsets (the common large-GEMM case).
                            let packed = Tile {
                                a_rs: 1,
                                a_cs: MR,
                                b_rs: NR,
                                ..tile
                            };
                            kernel.run_tile(packed, out);
                        } else if rows == MR && cols == NR {
                            kernel.run_tile(tile, out);
                        } else {
                            kernel.run_tile_edge(tile, rows, cols, out);
                        }
                    }
                }
            }
        }
    }
}
