//! The one place a convolution's path is chosen: [`Plan::new`] reads the shape and the table
//! (which optional kernels it has) and returns the forward path, whether the bias gradient is
//! fused into the weight gradient, and how the input gradient is computed. The entry points
//! run the plan; nothing else branches on the ISA.
//!
//! The rules, and why (the measurements are in `benches/README.md`):
//!
//! - channel path: tables that have it, stride 1, dilation 1, kernels up to
//!   [`CHANNEL_MAX_KERNEL`], at least [`CHANNEL_MIN_OUT_CHANNELS`] output channels and rows at
//!   most [`CHANNEL_MAX_OUT_W`] wide. Narrow rows fill a vector badly, channels fill it fully.
//! - direct path: stride 1, dilation 1, `1 <= K <=` [`DIRECT_MAX_K`]: with a small `K`
//!   unfolding costs as much as multiplying.
//! - unfolded path (im2col + GEMM) for every other shape.
//! - input gradient of the channel and direct paths: the transposed convolution (the forward
//!   of the padded output gradient with the flipped weight), on the table's row blocks for
//!   the channel path (they skip the kernel rows that read only padding), on its direct
//!   forward kernel for the direct path; GEMM + col2im where a padding is not below its
//!   kernel size (the transposed padding would be negative).

use super::geometry::Direct;
use super::{Conv2dShape, Table};
use crate::ShapeError;

/// The most unfolded rows `K = in_channels * kernel_h * kernel_w` a stride-1, dilation-1
/// convolution may have to take the direct path.
pub const DIRECT_MAX_K: usize = 100;

/// The widest output row the channel path takes (its pixel blocks are whole rows).
pub const CHANNEL_MAX_OUT_W: usize = 16;

/// The largest kernel height and width the channel path takes.
pub const CHANNEL_MAX_KERNEL: usize = 7;

/// The fewest output channels the channel path takes (fewer would leave most of each group's
/// 16 lanes idle).
pub const CHANNEL_MIN_OUT_CHANNELS: usize = 8;

/// The most f32 a column tile and its output buffer take together (512 KiB), so the tile stays
/// in a core's L2 between im2col, the GEMMs and col2im.
pub const TILE_BUDGET: usize = 128 * 1024;

/// The GEMM width (output pixels per tile) worth tiling for: narrower GEMMs run slower, wider
/// tiles measured no faster.
pub const TILE_COLUMNS: usize = 512;

/// Where the forward and the weight gradient run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path {
    Channel(Direct),
    Direct(Direct),
    /// im2col + GEMM in tiles of `per_tile` images.
    Unfolded {
        per_tile: usize,
    },
}

/// Where the input gradient runs. (A plan lives on the stack for one call: its size is not
/// worth a box.)
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum InputGradient {
    /// The transposed convolution `t` of `of` (the path's geometry), on the table's row
    /// blocks where `rows`, else on its direct forward kernel.
    Transposed { t: Direct, of: Direct, rows: bool },
    /// GEMM + col2im in tiles of `per_tile` images.
    Unfolded { per_tile: usize },
}

/// A convolution's paths on one table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) path: Path,
    /// The weight-gradient kernel also sums the bias gradient.
    pub(crate) fused_bias: bool,
    pub(crate) input_gradient: InputGradient,
}

impl Plan {
    /// The plan for a shape that passed [`Conv2dShape::check`] (so no length below overflows).
    #[track_caller]
    pub(crate) fn new(shape: &Conv2dShape, table: &Table) -> Plan {
        crate::or_panic(Plan::try_new(shape, table))
    }

    fn try_new(shape: &Conv2dShape, table: &Table) -> Result<Plan, ShapeError> {
        let channel = match table.channels_forward {
            Some(_) => channel_geometry(shape)?,
            None => None,
        };
        let direct = direct_geometry(shape)?;
        let (path, unit) = match (channel, direct) {
            (Some(c), _) => (Path::Channel(c), Some(c)),
            (None, Some(d)) => (Path::Direct(d), Some(d)),
            (None, None) => {
                let per_tile = shape.try_images_per_tile()?;
                (Path::Unfolded { per_tile }, None)
            }
        };
        let fused_bias =
            matches!(path, Path::Direct(_)) && table.direct_backward_weight_bias.is_some();
        let has_rows = table.rows_backward_input.is_some();
        let channel = matches!(path, Path::Channel(_));
        let input_gradient = match (path, unit) {
            (Path::Unfolded { per_tile }, _) => InputGradient::Unfolded { per_tile },
            (_, Some(of)) => match of.try_transposed()? {
                Some(t) => InputGradient::Transposed {
                    t,
                    of,
                    rows: channel && has_rows,
                },
                None => InputGradient::Unfolded { per_tile: 1 },
            },
            (_, None) => unreachable!("the channel and direct paths have a geometry"),
        };
        Ok(Plan {
            path,
            fused_bias,
            input_gradient,
        })
    }
}

/// The direct path's geometry if `shape` fits its rule.
pub(crate) fn direct_geometry(shape: &Conv2dShape) -> Result<Option<Direct>, ShapeError> {
    let k = shape.try_col_rows()?;
    Ok(Direct::try_unit(shape)?.filter(|_| k <= DIRECT_MAX_K))
}

/// The channel path's geometry if `shape` fits its rule (on a table that has the path).
pub(crate) fn channel_geometry(shape: &Conv2dShape) -> Result<Option<Direct>, ShapeError> {
    let s = shape;
    let kernel = 1..=CHANNEL_MAX_KERNEL;
    let fits = kernel.contains(&s.kernel_h)
        && kernel.contains(&s.kernel_w)
        && s.out_channels >= CHANNEL_MIN_OUT_CHANNELS;
    Ok(Direct::try_unit(shape)?.filter(|d| fits && d.out_w <= CHANNEL_MAX_OUT_W))
}

/// The rules as the crate's tests see them: outside the semver promise.
#[doc(hidden)]
pub mod rules {
    use super::super::{table_of, Conv2dShape};
    use super::{Path, Plan};
    use crate::Isa;

    pub use super::{
        CHANNEL_MAX_KERNEL, CHANNEL_MAX_OUT_W, CHANNEL_MIN_OUT_CHANNELS, DIRECT_MAX_K, TILE_BUDGET,
        TILE_COLUMNS,
    };

    /// Whether the shape fits the direct path's rule (what a table without the channel path,
    /// or a shape outside that path's rule, runs).
    #[track_caller]
    pub fn is_direct(shape: &Conv2dShape) -> bool {
        crate::or_panic(super::direct_geometry(shape)).is_some()
    }

    /// Whether the table of `isa` runs the shape on the channel path (false for an ISA of
    /// another architecture: it has no table here).
    #[track_caller]
    pub fn takes_channel_path(shape: &Conv2dShape, isa: Isa) -> bool {
        crate::or_panic(shape.check());
        table_of(isa).is_some_and(|t| matches!(Plan::new(shape, &t).path, Path::Channel(_)))
    }

    /// Images per column tile of the unfolded path.
    #[track_caller]
    pub fn images_per_tile(shape: &Conv2dShape) -> usize {
        crate::or_panic(shape.try_images_per_tile())
    }
}
