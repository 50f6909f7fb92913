//! The fused softmax-cross-entropy on AVX-512F (with AVX2 and FMA): the row kernel of
//! `vector.rs`, the logits prefetched ahead, and the block kernel of `block.rs` on `__m512`.

use super::{block as blocks, vector as rows, BlockArgs, RowArgs, RowStats, BLOCK_ROWS};

crate::simd::isa_fns! { "avx512f,avx2,fma", core::arch::x86_64::__m512;
    fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
        rows::row::<V>(x, out, args, true)
    }
    fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
        rows::row_in_place::<V>(x, args, true)
    }
    fn block(x: &[f32], c: usize, out: Option<&mut [f32]>, args: &BlockArgs) -> [f32; BLOCK_ROWS] {
        blocks::block::<V>(x, c, out, args)
    }
    fn block_in_place(x: &mut [f32], c: usize, args: &BlockArgs) -> [f32; BLOCK_ROWS] {
        blocks::block_in_place::<V>(x, c, args)
    }
}
