//! The fused softmax-cross-entropy on NEON: the row kernel of `vector.rs` and the block
//! kernel of `block.rs` on `float32x4_t`.

use super::{block as blocks, vector as rows, BlockArgs, RowArgs, RowStats, BLOCK_ROWS};

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
        rows::row::<V>(x, out, args, false)
    }
    fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
        rows::row_in_place::<V>(x, args, false)
    }
    fn block(x: &[f32], c: usize, out: Option<&mut [f32]>, args: &BlockArgs) -> [f32; BLOCK_ROWS] {
        blocks::block::<V>(x, c, out, args)
    }
    fn block_in_place(x: &mut [f32], c: usize, args: &BlockArgs) -> [f32; BLOCK_ROWS] {
        blocks::block_in_place::<V>(x, c, args)
    }
}
