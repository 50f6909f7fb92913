//! 2-D convolution, PyTorch's `conv2d`: input `[batch, in_channels, in_h, in_w]`, weight
//! `[out_channels, in_channels, kernel_h, kernel_w]`, bias `[out_channels]`, output
//! `[batch, out_channels, out_h, out_w]`, all contiguous NCHW; zero padding, stride, dilation;
//! `out = (in + 2 pad - dilation (kernel - 1) - 1) / stride + 1` per axis. Forward, and the
//! backward's weight, bias and (optional) input gradients. Every path gives PyTorch's results
//! within f32 summation error; the direct-loop references (the oracle) are in [`scalar`].
//!
//! # Paths
//!
//! The shape and the table pick one path:
//!
//! - channel (AVX-512 and AVX2; stride 1, dilation 1, narrow output rows, at least 8 output
//!   channels, small kernels; LeNet's conv2): output channels in the lanes, 16 per group, a
//!   register block of pixels, an in-register 16 x 16 (8 x 8) transpose back to NCHW; nothing
//!   unfolded. Narrow rows fill a vector badly along the row, channels fill it fully.
//! - direct (stride 1, dilation 1, small `K = in_channels kernel_h kernel_w`; LeNet's conv1):
//!   a block of output channels x vectors along a row in registers, one broadcast weight per
//!   channel and tap; the input gradient is the forward of the padded `dy` with the flipped,
//!   channel-swapped weight. With small `K` unfolding costs as much as multiplying.
//! - unfolded (every other shape): [`im2col`] of a tile of images side by side, one GEMM per
//!   tile (`out = weight x cols`, the output starting as the bias), and for the backward
//!   `grad_weight += dy x cols^T`, `grad_cols = weight^T x dy` folded back by [`col2im`].
//!
//! Where a padding is not below its kernel size the input gradient takes the unfolded path's
//! GEMM + col2im. The thresholds are the shape's predicates; the measurements behind them are
//! in `benches/README.md`.
//!
//! # Workspace and invariants
//!
//! The caller owns the scratch, [`Conv2dShape::workspace_len`] floats, computed with checked
//! arithmetic from the shape alone (not the table): the largest any path of the shape needs, so
//! one buffer serves forward and backward and a training loop allocates nothing per step. It
//! grows with `batch` only up to the unfolded path's tile bound, so a workspace for the largest
//! batch serves smaller ones. The direct path's padded planes end with 16 zeroed floats of
//! slack, so a row's last vector may load past the row without leaving the buffer; its last
//! vector's extra lanes are never stored, and the weight gradient masks both operands there so
//! an infinity beyond the row cannot make `0 * inf = NaN`.
//!
//! ```
//! use simdnet_kernels::conv::Conv2dShape;
//! use simdnet_kernels::Kernels;
//!
//! // LeNet-5's conv1 on a batch of 2: 1 -> 6 channels, 28x28, 5x5, padding 2.
//! let shape = Conv2dShape::new(2, 1, 6, (28, 28), (5, 5)).with_padding(2, 2);
//! assert_eq!((shape.out_h(), shape.out_w()), (28, 28));
//! let (x, w, b) = (vec![0.5; shape.input_len()], vec![0.1; shape.weight_len()], vec![1.0; 6]);
//! let mut workspace = vec![0.0; shape.workspace_len()]; // allocate once, reuse every step
//! let mut y = vec![0.0; shape.output_len()];
//! let k = Kernels::get();
//! k.conv2d_forward(&shape, &x, &w, Some(&b), &mut y, &mut workspace);
//! assert!((y[28 * 14 + 14] - (1.0 + 25.0 * 0.05)).abs() < 1e-5); // an interior pixel
//!
//! // Backward of a first layer: no input gradient.
//! let dy = vec![1.0; shape.output_len()];
//! let (mut dw, mut db) = (vec![0.0; shape.weight_len()], vec![0.0; 6]);
//! k.conv2d_backward(&shape, &x, &w, &dy, None, &mut dw, Some(&mut db), &mut workspace);
//! assert_eq!(db, vec![2.0 * 784.0; 6]);
//! ```

pub mod scalar;
mod shape;

pub use shape::Conv2dShape;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::gemm::Transpose;
use crate::{
    check_len, checked_product, checked_sum, kernel_table, Isa, Kernels, Real, ShapeError,
};

kernel_table! {
    /// Per-ISA entries of the direct path (lengths checked by the caller against the
    /// geometry, which comes from [`Direct::new`] or [`Direct::transposed`]): `direct_forward(geometry, input, weight, bias, output,
    /// workspace)` overwrites the output; `direct_backward_weight(geometry, input, grad_output,
    /// grad_weight, workspace)` overwrites the weight gradient.
    pub(crate) struct Table {
        direct_forward: unsafe fn(&Direct, &[f32], &[f32], Option<&[f32]>, &mut [f32], &mut [f32]),
        direct_backward_weight: unsafe fn(&Direct, &[f32], &[f32], &mut [f32], &mut [f32]),
    }
}

/// The scalar table's direct forward: the SIMD files' padded planes and loop order in plain
/// Rust (each tap adds one weight times a shifted input row into a row of outputs), about as
/// fast as the scalar im2col + GEMM path, where the reference loops are several times slower.
///
/// Safety: safe for arguments the caller checked (plain slice indexing).
unsafe fn scalar_direct_forward(
    d: &Direct,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    workspace: &mut [f32],
) {
    let s = &d.shape;
    let padded = &mut workspace[..d.padded_len()];
    d.clear_padded(padded);
    let (image_len, out_plane, k_len) = (s.image_len(), d.out_h * d.out_w, s.col_rows());
    let out_image = s.out_channels * out_plane;
    for b in 0..s.batch {
        d.pad_image(&input[b * image_len..][..image_len], padded);
        let out = &mut output[b * out_image..][..out_image];
        for (co, plane) in out.chunks_exact_mut(out_plane).enumerate() {
            plane.fill(bias.map_or(0.0, |bias| bias[co]));
            let taps = &weight[co * k_len..][..k_len];
            for (y, row) in plane.chunks_exact_mut(d.out_w).enumerate() {
                for ci in 0..s.in_channels {
                    for ky in 0..s.kernel_h {
                        let at = ci * d.plane_len() + (y + ky) * d.padded_w;
                        let src = &padded[at..][..d.padded_w];
                        for kx in 0..s.kernel_w {
                            let w = taps[(ci * s.kernel_h + ky) * s.kernel_w + kx];
                            for (o, &x) in row.iter_mut().zip(&src[kx..]) {
                                *o += w * x;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The scalar table's direct weight gradient: per image and weight, a sum of row dot products
/// of the output gradient with a shifted padded input row.
///
/// Safety: safe for arguments the caller checked (plain slice indexing).
unsafe fn scalar_direct_backward_weight(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    workspace: &mut [f32],
) {
    let s = &d.shape;
    let padded = &mut workspace[..d.padded_len()];
    d.clear_padded(padded);
    grad_weight.fill(0.0);
    let (image_len, out_plane, k_len) = (s.image_len(), d.out_h * d.out_w, s.col_rows());
    let out_image = s.out_channels * out_plane;
    for b in 0..s.batch {
        d.pad_image(&input[b * image_len..][..image_len], padded);
        let dy = &grad_output[b * out_image..][..out_image];
        for (co, grads) in dy.chunks_exact(out_plane).enumerate() {
            for ci in 0..s.in_channels {
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        let mut sum = 0.0;
                        for (y, g) in grads.chunks_exact(d.out_w).enumerate() {
                            let at = ci * d.plane_len() + (y + ky) * d.padded_w + kx;
                            let x = &padded[at..][..d.out_w];
                            sum += g.iter().zip(x).map(|(g, x)| g * x).sum::<f32>();
                        }
                        grad_weight[co * k_len + (ci * s.kernel_h + ky) * s.kernel_w + kx] += sum;
                    }
                }
            }
        }
    }
}

pub(crate) fn table(isa: Isa) -> Table {
    match isa {
        Isa::Scalar => Table {
            direct_forward: scalar_direct_forward,
            direct_backward_weight: scalar_direct_backward_weight,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Table {
            direct_forward: avx2::direct_forward,
            direct_backward_weight: avx2::direct_backward_weight,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Table {
            direct_forward: avx512::direct_forward,
            direct_backward_weight: avx512::direct_backward_weight,
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Table {
            direct_forward: neon::direct_forward,
            direct_backward_weight: neon::direct_backward_weight,
        },
        #[allow(unreachable_patterns)]
        _ => unreachable!("{isa} is not an ISA of this architecture"),
    }
}

/// The most unfolded rows `K = in_channels * kernel_h * kernel_w` a stride-1, dilation-1
/// convolution may have to take the direct path (see the module docs).
pub const DIRECT_MAX_K: usize = 100;

/// Output channels per group of the channel path: one AVX-512 vector of f32 (two AVX2 ones).
const CHANNEL_GROUP: usize = 16;

/// The widest output row the channel path takes (its pixel blocks are whole rows).
pub const CHANNEL_MAX_OUT_W: usize = 16;

/// The largest kernel height and width the channel path takes.
pub const CHANNEL_MAX_KERNEL: usize = 7;

/// The fewest output channels the channel path takes (fewer would leave most of each vector's
/// 16 lanes idle).
pub const CHANNEL_MIN_OUT_CHANNELS: usize = 8;

/// The most taps per input-gradient value (`out_channels * kernel_h * kernel_w`) for which the
/// AVX2 channel path computes the input gradient on its direct forward kernel; above, it takes
/// GEMM and col2im (see the module docs).
#[cfg(target_arch = "x86_64")]
const AVX2_DIRECT_DX_MAX_K: usize = 300;

/// The widest vector any ISA's direct path loads, in f32: the padded planes are followed by
/// this much zeroed slack, so a row's last vector may load past the row's end (its extra lanes
/// are never stored) without leaving the workspace.
const DIRECT_SLACK: usize = 16;

/// Where a forward block of the direct path lies: output channels from `co0`, row `y`, columns
/// `x0..x0 + cols` (`1 <= cols <=` the ISA's block width, its vectors times its lanes).
#[derive(Clone, Copy)]
pub(crate) struct Block {
    pub co0: usize,
    pub y: usize,
    pub x0: usize,
    pub cols: usize,
}

/// Which weights a gradient block of the direct path accumulates: input channel `ci`, kernel
/// row `ky`, output channels from `co0`, kernel columns from `kx0`.
#[derive(Clone, Copy)]
pub(crate) struct Taps {
    pub ci: usize,
    pub ky: usize,
    pub co0: usize,
    pub kx0: usize,
}

/// The geometry of the direct path: a shape with stride 1, dilation 1 and `1 <= K <=`
/// [`DIRECT_MAX_K`], and the sizes of its zero-padded planes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Direct {
    pub(crate) shape: Conv2dShape,
    pub(crate) out_h: usize,
    pub(crate) out_w: usize,
    /// A padded plane is `padded_h x padded_w`: `in + 2 * pad` per axis, which is
    /// `out + kernel - 1` at stride 1 and dilation 1.
    pub(crate) padded_h: usize,
    pub(crate) padded_w: usize,
}

/// Defines `name(&self) -> T` as `try_name`'s value, or a panic with its [`ShapeError`]: the
/// checked lengths in their programmer-error form (ISA bodies and entry points use these, the
/// shapes' `check` the fallible ones).
macro_rules! or_panic {
    ($($(#[$meta:meta])* $vis:vis fn $name:ident = $try:ident -> $ty:ty;)*) => {$(
        $(#[$meta])*
        #[track_caller]
        $vis fn $name(&self) -> $ty {
            crate::or_panic(self.$try())
        }
    )*};
}
pub(crate) use or_panic;

impl Direct {
    /// The geometry if `shape` takes the direct path.
    #[track_caller]
    fn new(shape: &Conv2dShape) -> Option<Direct> {
        crate::or_panic(Direct::try_new(shape))
    }

    fn try_new(shape: &Conv2dShape) -> Result<Option<Direct>, ShapeError> {
        let k = shape.try_col_rows()?;
        Ok(Direct::try_unit(shape)?.filter(|_| k <= DIRECT_MAX_K))
    }

    /// The padded-plane geometry of any stride-1, dilation-1 shape with `K >= 1` (the direct
    /// path's and the channel path's).
    fn try_unit(shape: &Conv2dShape) -> Result<Option<Direct>, ShapeError> {
        let s = shape;
        let unit = s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1;
        if !unit || s.try_col_rows()? == 0 {
            return Ok(None);
        }
        Ok(Some(Direct {
            shape: *s,
            out_h: s.try_out_h()?,
            out_w: s.try_out_w()?,
            padded_h: s.padded_in("h", s.in_h, s.pad_h)?,
            padded_w: s.padded_in("w", s.in_w, s.pad_w)?,
        }))
    }

    /// The geometry if `shape` fits the channel path's rule (see
    /// [`Conv2dShape::takes_channel_path`]; the ISA is not checked here).
    #[track_caller]
    fn channels(shape: &Conv2dShape) -> Option<Direct> {
        crate::or_panic(Direct::try_channels(shape))
    }

    fn try_channels(shape: &Conv2dShape) -> Result<Option<Direct>, ShapeError> {
        let s = shape;
        let kernel = 1..=CHANNEL_MAX_KERNEL;
        let fits = kernel.contains(&s.kernel_h)
            && kernel.contains(&s.kernel_w)
            && s.out_channels >= CHANNEL_MIN_OUT_CHANNELS;
        Ok(Direct::try_unit(shape)?.filter(|d| fits && d.out_w <= CHANNEL_MAX_OUT_W))
    }

    or_panic! {
        fn channels_padded = try_channels_padded -> usize;
        fn channel_passes_len = try_channel_passes_len -> usize;
        fn channel_workspace_len = try_channel_workspace_len -> usize;
        /// Elements of one padded plane.
        pub(crate) fn plane_len = try_plane_len -> usize;
        /// Elements of one output plane, `out_h * out_w`.
        pub(crate) fn out_plane_len = try_out_plane_len -> usize;
        /// Elements of the padded image buffer: every input channel's padded plane and the
        /// slack.
        pub(crate) fn padded_len = try_padded_len -> usize;
        /// Elements of the weight gradient's vector partial sums: [`DIRECT_SLACK`] lanes per
        /// weight.
        pub(crate) fn partials_len = try_partials_len -> usize;
        fn transposed = try_transposed -> Option<Direct>;
    }

    /// Panics unless what the direct path's ISA bodies rely on holds: stride and dilation 1,
    /// `K >= 1`, padded planes of `out + kernel - 1` per axis (the bodies read `kernel` rows
    /// and columns from every output position), and a workspace holding the padded planes, their
    /// slack and the partial sums. [`Direct::new`] establishes them; this is the release-build
    /// check, run before every `unsafe` call into an ISA body.
    #[track_caller]
    fn assert_direct_invariants(&self, workspace_len: usize) {
        let s = &self.shape;
        let unit = s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1;
        assert!(
            unit && s.col_rows() >= 1,
            "conv2d: direct path: stride and dilation 1 and K >= 1 are required: {s:?}"
        );
        let fits = |padded: usize, kernel: usize, out: usize| {
            padded.checked_sub(kernel - 1) == Some(out) && out >= 1
        };
        assert!(
            fits(self.padded_h, s.kernel_h, self.out_h)
                && fits(self.padded_w, s.kernel_w, self.out_w),
            "conv2d: direct path: padded planes {}x{} do not match the output {}x{} and kernel \
             {}x{} of {s:?}",
            self.padded_h,
            self.padded_w,
            self.out_h,
            self.out_w,
            s.kernel_h,
            s.kernel_w
        );
        let q = "conv2d: the direct path's workspace (padded planes + partial sums)";
        let need = crate::or_panic(checked_sum(s, q, &[self.padded_len(), self.partials_len()]));
        assert!(
            workspace_len >= need,
            "conv2d: direct path: workspace of {workspace_len} f32 is shorter than the {need} \
             its passes need for {s:?}"
        );
    }

    /// Panics unless what the channel path's ISA bodies rely on holds: the direct path's
    /// geometry ([`Direct::assert_direct_invariants`], without its partial sums), the rule of
    /// [`Direct::channels`] (kernels of at most [`CHANNEL_MAX_KERNEL`], `out_w <=`
    /// [`CHANNEL_MAX_OUT_W`] and `out_channels >=` [`CHANNEL_MIN_OUT_CHANNELS`]: the register
    /// blocks are sized by them), and a workspace of at least [`Direct::channel_workspace_len`]
    /// (the split into padded planes, taps and pixels, and the input gradient's part).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[track_caller]
    fn assert_channel_invariants(&self, workspace_len: usize) {
        let s = &self.shape;
        self.assert_direct_invariants(usize::MAX);
        let kernel = 1..=CHANNEL_MAX_KERNEL;
        assert!(
            kernel.contains(&s.kernel_h)
                && kernel.contains(&s.kernel_w)
                && self.out_w <= CHANNEL_MAX_OUT_W
                && s.out_channels >= CHANNEL_MIN_OUT_CHANNELS,
            "conv2d: channel path: the shape is outside the path's rule: {s:?}"
        );
        let need = self.channel_workspace_len();
        assert!(
            workspace_len >= need,
            "conv2d: channel path: workspace of {workspace_len} f32 is shorter than the {need} \
             it needs for {s:?}"
        );
    }

    /// Panics unless `self`, the transposed convolution of `of` ([`Direct::transposed`]), has
    /// the direct geometry its forward body relies on, swaps `of`'s channels and spatial sizes,
    /// and fits, after the flipped weight, in a workspace of `workspace_len`.
    #[track_caller]
    fn assert_transposed_invariants(&self, of: &Direct, workspace_len: usize) {
        self.assert_direct_invariants(usize::MAX);
        let (s, t) = (&of.shape, &self.shape);
        assert!(
            t.batch == s.batch
                && (t.in_channels, t.out_channels) == (s.out_channels, s.in_channels)
                && (t.in_h, t.in_w) == (of.out_h, of.out_w)
                && (self.out_h, self.out_w) == (s.in_h, s.in_w)
                && (t.kernel_h, t.kernel_w) == (s.kernel_h, s.kernel_w),
            "conv2d: input gradient: {t:?} is not the transposed convolution of {s:?}"
        );
        let q =
            "conv2d: the input gradient's workspace (weight_len + padded output-gradient planes)";
        let need = crate::or_panic(checked_sum(s, q, &[s.weight_len(), self.padded_len()]));
        assert!(
            workspace_len >= need,
            "conv2d: input gradient: workspace of {workspace_len} f32 is shorter than the {need} \
             it needs for {s:?}"
        );
    }

    /// Output channels rounded up to whole groups of 16 (one AVX-512 vector each).
    fn try_channels_padded(&self) -> Result<usize, ShapeError> {
        let groups = self.shape.out_channels.div_ceil(CHANNEL_GROUP);
        checked_product(
            &self.shape,
            "conv2d: the channel path's padded output channels (ceil(out_channels / 16) * 16)",
            &[groups, CHANNEL_GROUP],
        )
    }

    /// The channel path's workspace for the forward and weight-gradient passes: one image's
    /// padded planes, the weight (or its gradient's partial sums) as `[group][K][16]`, and one
    /// image's output (or output gradient) channels-last, `[group][pixel][16]`.
    fn try_channel_passes_len(&self) -> Result<usize, ShapeError> {
        let s = &self.shape;
        let q = "conv2d: the channel path's workspace (padded planes + channels_padded * (K + out_h * out_w))";
        let per_channel = checked_sum(s, q, &[s.try_col_rows()?, self.try_out_plane_len()?])?;
        let groups = checked_product(s, q, &[self.try_channels_padded()?, per_channel])?;
        checked_sum(s, q, &[self.try_padded_len()?, groups])
    }

    /// The channel path's workspace: its passes', or the input gradient's if more (as the
    /// direct path's, [`Direct::workspace_len`]).
    fn try_channel_workspace_len(&self) -> Result<usize, ShapeError> {
        Ok(self
            .try_channel_passes_len()?
            .max(self.try_input_gradient_len()?))
    }

    /// The channel path's workspace in its three parts: padded planes, weight taps
    /// `[group][K][16]`, pixels `[group][pixel][16]` (see [`Direct::channel_passes_len`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn channel_split<'a>(
        &self,
        workspace: &'a mut [f32],
    ) -> (&'a mut [f32], &'a mut [f32], &'a mut [f32]) {
        let cp = self.channels_padded();
        assert!(
            workspace.len() >= self.channel_passes_len(),
            "conv2d: channel path: workspace of {} f32 is shorter than its passes' {} for {:?}",
            workspace.len(),
            self.channel_passes_len(),
            self.shape
        );
        let (padded, rest) = workspace.split_at_mut(self.padded_len());
        let (taps, rest) = rest.split_at_mut(cp * self.shape.col_rows());
        (padded, taps, &mut rest[..cp * self.out_plane_len()])
    }

    /// One image's planes as the channel path's forward and weight gradient read them: the
    /// image itself when there is no padding (its planes are then the padded planes, and those
    /// passes read nothing past a plane's end), else its copy into `padded`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn channel_planes<'a>(&self, image: &'a [f32], padded: &'a mut [f32]) -> &'a [f32] {
        if self.shape.pad_h == 0 && self.shape.pad_w == 0 {
            image
        } else {
            self.pad_image(image, padded);
            padded
        }
    }

    /// The weight as the channel path reads it: `taps[g][k][c] = weight[g * 16 + c][k]`, zero
    /// for channels past `out_channels`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn channel_weights(&self, weight: &[f32], taps: &mut [f32]) {
        let (k_len, cout) = (self.shape.col_rows(), self.shape.out_channels);
        for (g, group) in taps.chunks_exact_mut(k_len * CHANNEL_GROUP).enumerate() {
            for (k, lanes) in group.chunks_exact_mut(CHANNEL_GROUP).enumerate() {
                for (c, t) in lanes.iter_mut().enumerate() {
                    let co = g * CHANNEL_GROUP + c;
                    *t = if co < cout {
                        weight[co * k_len + k]
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    fn try_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: a padded plane ((in_h + 2 * pad_h) * (in_w + 2 * pad_w))";
        checked_product(&self.shape, q, &[self.padded_h, self.padded_w])
    }

    fn try_out_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: an output plane (out_h * out_w)";
        checked_product(&self.shape, q, &[self.out_h, self.out_w])
    }

    fn try_padded_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: the padded planes (in_channels * padded plane + 16)";
        let planes = [self.shape.in_channels, self.try_plane_len()?];
        let planes = checked_product(&self.shape, q, &planes)?;
        checked_sum(&self.shape, q, &[planes, DIRECT_SLACK])
    }

    fn try_partials_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: the direct path's partial sums (weight_len * 16)";
        checked_product(
            &self.shape,
            q,
            &[self.shape.try_weight_len()?, DIRECT_SLACK],
        )
    }

    /// The workspace the direct path uses: the padded planes and the partial sums for the
    /// forward and weight-gradient passes, or, if more, what the input gradient needs after
    /// them: the flipped weight and the padded output-gradient planes (see
    /// [`Direct::transposed`]), else one image's columns for GEMM and col2im.
    fn try_workspace_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: the direct path's workspace (padded planes + partial sums)";
        let passes = [self.try_padded_len()?, self.try_partials_len()?];
        let passes = checked_sum(&self.shape, q, &passes)?;
        Ok(passes.max(self.try_input_gradient_len()?))
    }

    /// The workspace the input gradient needs (after the other passes, so it reuses theirs):
    /// the flipped weight and the padded output-gradient planes, or one image's columns.
    fn try_input_gradient_len(&self) -> Result<usize, ShapeError> {
        match self.try_transposed()? {
            Some(t) => checked_sum(
                &self.shape,
                "conv2d: the input gradient's workspace (weight_len + padded output-gradient planes)",
                &[self.shape.try_weight_len()?, t.try_padded_len()?],
            ),
            None => self.shape.try_col_len(),
        }
    }

    /// The input gradient as a direct convolution: at stride 1 and dilation 1,
    /// `grad_input[ci][y][x] = sum over co, ky, kx of dy[co][y + pad_h - ky][x + pad_w - kx] *
    /// w[co][ci][ky][kx]` (zero outside `dy`), which is the forward convolution of `dy` padded
    /// by `kernel - 1 - pad` with the weight's channels swapped and its taps flipped
    /// ([`Direct::flip_weight`]). `None` when a padding is not below its kernel size (the
    /// padding would be negative) or the input plane is empty.
    fn try_transposed(&self) -> Result<Option<Direct>, ShapeError> {
        let s = &self.shape;
        if s.pad_h >= s.kernel_h || s.pad_w >= s.kernel_w || s.in_h == 0 || s.in_w == 0 {
            return Ok(None);
        }
        let (pad_h, pad_w) = (s.kernel_h - 1 - s.pad_h, s.kernel_w - 1 - s.pad_w);
        let shape = Conv2dShape::new(
            s.batch,
            s.out_channels,
            s.in_channels,
            (self.out_h, self.out_w),
            (s.kernel_h, s.kernel_w),
        )
        .with_padding(pad_h, pad_w);
        Ok(Some(Direct {
            shape,
            out_h: s.in_h,
            out_w: s.in_w,
            padded_h: shape.padded_in("h", self.out_h, pad_h)?,
            padded_w: shape.padded_in("w", self.out_w, pad_w)?,
        }))
    }

    /// `flipped[ci][co][ky][kx] = weight[co][ci][kernel_h - 1 - ky][kernel_w - 1 - kx]`: the
    /// weight of [`Direct::transposed`].
    fn flip_weight(&self, weight: &[f32], flipped: &mut [f32]) {
        let s = &self.shape;
        let (cin, cout, kh, kw) = (s.in_channels, s.out_channels, s.kernel_h, s.kernel_w);
        for co in 0..cout {
            for ci in 0..cin {
                let from = &weight[(co * cin + ci) * kh * kw..][..kh * kw];
                let to = &mut flipped[(ci * cout + co) * kh * kw..][..kh * kw];
                for (t, f) in to.iter_mut().zip(from.iter().rev()) {
                    *t = *f;
                }
            }
        }
    }

    /// Zeroes the padded buffer (the borders and the slack stay zero from then on: each image
    /// only overwrites the planes' interiors).
    pub(crate) fn clear_padded(&self, padded: &mut [f32]) {
        padded[..self.padded_len()].fill(0.0);
    }

    /// Copies one image `[in_channels, in_h, in_w]` into the interiors of the padded planes.
    pub(crate) fn pad_image(&self, image: &[f32], padded: &mut [f32]) {
        let s = &self.shape;
        let plane = self.plane_len();
        for c in 0..s.in_channels {
            let segments = Segments {
                rows: s.in_h,
                dst_at: c * plane + s.pad_h * self.padded_w + s.pad_w,
                dst_step: self.padded_w,
                src_at: c * s.in_h * s.in_w,
                src_step: s.in_w,
            };
            copy_segments(padded, image, s.in_w, segments);
        }
    }
}

/// The most f32 a column tile and its output buffer take together: 512 KiB, a quarter of this
/// machine's L2, so the tile stays in cache between im2col, the GEMMs and col2im.
pub const TILE_BUDGET: usize = 128 * 1024;

/// The GEMM width (output pixels per tile) worth tiling for. Narrower GEMMs (conv2's 100 per
/// image) run slower; wider tiles measured no faster (conv2 fwd+bwd at batch 64: 1 image 2.63
/// ms, 3 to 11 images 2.38 to 2.45 ms) and cost conv1 (784 per image) ~10% for 2 images (the
/// scatter and gather copies, and the columns leaving L1).
pub const TILE_COLUMNS: usize = 512;

/// The output positions `o` in `0..out_len` whose input coordinate `o * stride + offset - pad`
/// lies in `0..in_len`: always one contiguous range `lo..hi` (possibly empty).
fn valid_range(
    out_len: usize,
    in_len: usize,
    offset: usize,
    pad: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if pad + in_len > offset {
        (pad + in_len - offset).div_ceil(stride)
    } else {
        0
    };
    let lo = lo.min(out_len);
    (lo, hi.min(out_len).max(lo))
}

/// One row `(c, ki, kj)` of the column matrix: which output rows and columns read inside the
/// image (the rest read the zero padding), and where.
struct ColRow {
    /// Channel `c`'s plane starts at `c * in_h * in_w` in the image.
    plane: usize,
    /// Output rows `y_lo..y_hi` read image rows `oy * stride_h + y_off - pad_h`.
    y_lo: usize,
    y_hi: usize,
    y_off: usize,
    /// Output columns `x_lo..x_hi` read image columns from `ix0` on, every `stride_w`.
    x_lo: usize,
    x_hi: usize,
    ix0: usize,
}

/// Calls `row(r, geometry)` for every row `r` of the column matrix, in order.
#[inline(always)]
fn for_each_col_row(shape: &Conv2dShape, mut row: impl FnMut(usize, &ColRow)) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let mut r = 0;
    for c in 0..shape.in_channels {
        for ki in 0..shape.kernel_h {
            let y_off = ki * shape.dilation_h;
            let (y_lo, y_hi) = valid_range(oh, shape.in_h, y_off, shape.pad_h, shape.stride_h);
            for kj in 0..shape.kernel_w {
                let x_off = kj * shape.dilation_w;
                let (x_lo, x_hi) = valid_range(ow, shape.in_w, x_off, shape.pad_w, shape.stride_w);
                let ix0 = if x_lo < x_hi {
                    x_lo * shape.stride_w + x_off - shape.pad_w
                } else {
                    0
                };
                let geometry = ColRow {
                    plane: c * shape.in_h * shape.in_w,
                    y_lo,
                    y_hi,
                    y_off,
                    x_lo,
                    x_hi,
                    ix0,
                };
                row(r, &geometry);
                r += 1;
            }
        }
    }
}

/// Adds a row segment into another, `dst[i] += src[i]`.
#[inline(always)]
fn add_run<T: Real>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Unfolds one image `[in_channels, in_h, in_w]` into the column matrix `cols[K, N]`,
/// `K = in_channels * kernel_h * kernel_w` (row `(c * kernel_h + ki) * kernel_w + kj`) and
/// `N = out_h * out_w`: `cols[(c, ki, kj), (oy, ox)] = image[c, oy * stride_h + ki * dilation_h -
/// pad_h, ox * stride_w + kj * dilation_w - pad_w]`, or 0 where that falls in the padding.
/// `shape.batch` is ignored.
///
/// # Panics
/// If `image` is not `in_channels * in_h * in_w` long or `cols` not [`Conv2dShape::col_len`],
/// or if the shape is invalid (see [`Conv2dShape::out_h`]).
#[track_caller]
pub fn im2col<T: Real>(shape: &Conv2dShape, image: &[T], cols: &mut [T]) {
    check_len("im2col: image", shape.image_len(), image.len());
    check_len("im2col: cols", shape.col_len(), cols.len());
    im2col_strided(shape, image, cols, shape.out_plane_len());
}

/// [`im2col`] into a wider matrix: row `r` of the image's columns goes to
/// `cols[r * ld..][..out_h * out_w]` (a column tile holds several images side by side).
fn im2col_strided<T: Real>(shape: &Conv2dShape, image: &[T], cols: &mut [T], ld: usize) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let (in_w, sh, sw, ph) = (shape.in_w, shape.stride_h, shape.stride_w, shape.pad_h);
    for_each_col_row(shape, |r, g| {
        let dst = &mut cols[r * ld..][..oh * ow];
        // Output rows that read the top or bottom padding.
        dst[..g.y_lo * ow].fill(T::ZERO);
        dst[g.y_hi * ow..].fill(T::ZERO);
        let (x_lo, x_hi, width) = (g.x_lo, g.x_hi, g.x_hi - g.x_lo);
        if width == 0 {
            // Every column reads the left or right padding (or the image has no columns).
            dst.fill(T::ZERO);
            return;
        }
        if g.y_lo == g.y_hi {
            return; // every row reads the top or bottom padding: zeroed above
        }
        // Output row oy reads image row `first_row + (oy - y_lo) * stride_h`, columns from ix0.
        let first_row = g.y_lo * sh + g.y_off - ph;
        let rows = g.y_hi - g.y_lo;
        // Between rows `stride_h` image rows apart; with one row there is no step (and a stride
        // near usize::MAX times the row width would overflow).
        let src_step = if rows > 1 { sh * in_w } else { 0 };
        let src_start = g.plane + first_row * in_w + g.ix0;
        if x_lo > 0 || x_hi < ow {
            // Left or right padding: one fill of the rows beats a short fill per row (the
            // compiler turns those into `memset` calls); the copies then overwrite the inside.
            dst[g.y_lo * ow..g.y_hi * ow].fill(T::ZERO);
        }
        let segments = Segments {
            rows,
            dst_at: g.y_lo * ow + x_lo,
            dst_step: ow,
            src_at: src_start,
            src_step,
        };
        if sw == 1 {
            copy_segments(dst, image, width, segments);
        } else {
            let mut src_at = src_start;
            for oy in g.y_lo..g.y_hi {
                let inside = &mut dst[oy * ow + x_lo..][..width];
                for (o, &s) in inside.iter_mut().zip(image[src_at..].iter().step_by(sw)) {
                    *o = s;
                }
                src_at += src_step;
            }
        }
    });
}

/// `rows` equally spaced segments: segment `i` goes from `src[src_at + i * src_step..]` to
/// `dst[dst_at + i * dst_step..]`.
#[derive(Clone, Copy)]
struct Segments {
    rows: usize,
    dst_at: usize,
    dst_step: usize,
    src_at: usize,
    src_step: usize,
}

/// Copies the segments of `src` into those of `dst`, `width` elements each. Widths up to 32
/// (LeNet's are 10 and 26 to 28) get a loop with the width a constant, so each copy is a few
/// inline moves: a `memcpy` call costs more than the copy at these lengths (about a third fewer
/// instructions for conv2's im2col, by callgrind).
#[inline(always)]
fn copy_segments<T: Real>(dst: &mut [T], src: &[T], width: usize, seg: Segments) {
    macro_rules! by_width {
        ($($w:literal)*) => {
            match width {
                $($w => copy_segments_of::<T, $w>(dst, src, seg),)*
                _ => {
                    for i in 0..seg.rows {
                        let (d, s) = (seg.dst_at + i * seg.dst_step, seg.src_at + i * seg.src_step);
                        dst[d..d + width].copy_from_slice(&src[s..s + width]);
                    }
                }
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
}

/// Adds the segments of `src` into those of `dst`, `width` elements each, with the width a
/// constant up to 32 (as [`copy_segments`]).
#[inline(always)]
fn add_segments<T: Real>(dst: &mut [T], src: &[T], width: usize, seg: Segments) {
    macro_rules! by_width {
        ($($w:literal)*) => {
            match width {
                $($w => add_segments_of::<T, $w>(dst, src, seg),)*
                _ => {
                    for i in 0..seg.rows {
                        let (d, s) = (seg.dst_at + i * seg.dst_step, seg.src_at + i * seg.src_step);
                        add_run(&mut dst[d..d + width], &src[s..s + width]);
                    }
                }
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
}

#[inline(always)]
fn add_segments_of<T: Real, const W: usize>(dst: &mut [T], src: &[T], seg: Segments) {
    for i in 0..seg.rows {
        let (d, s) = (seg.dst_at + i * seg.dst_step, seg.src_at + i * seg.src_step);
        let from: &[T; W] = src[s..s + W].try_into().expect("W elements");
        let to: &mut [T; W] = (&mut dst[d..d + W]).try_into().expect("W elements");
        for (t, &f) in to.iter_mut().zip(from) {
            *t += f;
        }
    }
}

#[inline(always)]
fn copy_segments_of<T: Real, const W: usize>(dst: &mut [T], src: &[T], seg: Segments) {
    for i in 0..seg.rows {
        let (d, s) = (seg.dst_at + i * seg.dst_step, seg.src_at + i * seg.src_step);
        let from: &[T; W] = src[s..s + W].try_into().expect("W elements");
        let to: &mut [T; W] = (&mut dst[d..d + W]).try_into().expect("W elements");
        *to = *from;
    }
}

/// The adjoint of [`im2col`]: adds every column-matrix entry into the image element it was read
/// from (entries in the padding are dropped). Accumulates: zero `image` first for a plain fold.
/// `shape.batch` is ignored.
///
/// # Panics
/// If `cols` is not [`Conv2dShape::col_len`] long or `image` not `in_channels * in_h * in_w`,
/// or if the shape is invalid (see [`Conv2dShape::out_h`]).
#[track_caller]
pub fn col2im<T: Real>(shape: &Conv2dShape, cols: &[T], image: &mut [T]) {
    check_len("col2im: cols", shape.col_len(), cols.len());
    check_len("col2im: image", shape.image_len(), image.len());
    col2im_strided(shape, cols, shape.out_plane_len(), image);
}

/// [`col2im`] from a wider matrix: row `r` of the image's columns is
/// `cols[r * ld..][..out_h * out_w]`.
fn col2im_strided<T: Real>(shape: &Conv2dShape, cols: &[T], ld: usize, image: &mut [T]) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let (in_w, sh, sw, ph) = (shape.in_w, shape.stride_h, shape.stride_w, shape.pad_h);
    for_each_col_row(shape, |r, g| {
        let (x_lo, width) = (g.x_lo, g.x_hi - g.x_lo);
        if g.y_lo == g.y_hi || width == 0 {
            return; // nothing reads inside the image
        }
        let src_row = &cols[r * ld..][..oh * ow];
        let first_row = g.y_lo * sh + g.y_off - ph;
        // As in `im2col_strided`: no step for a single row.
        let dst_step = if g.y_hi - g.y_lo > 1 { sh * in_w } else { 0 };
        let dst_start = g.plane + first_row * in_w + g.ix0;
        if sw == 1 {
            let segments = Segments {
                rows: g.y_hi - g.y_lo,
                dst_at: dst_start,
                dst_step,
                src_at: g.y_lo * ow + x_lo,
                src_step: ow,
            };
            add_segments(image, src_row, width, segments);
        } else {
            let mut dst_at = dst_start;
            for oy in g.y_lo..g.y_hi {
                let src = &src_row[oy * ow + x_lo..][..width];
                for (d, &s) in image[dst_at..].iter_mut().step_by(sw).zip(src) {
                    *d += s;
                }
                dst_at += dst_step;
            }
        }
    });
}

impl Kernels {
    /// Convolution forward: `output = conv2d(input, weight) + bias` (PyTorch's `F.conv2d` with
    /// `stride`, `padding` and `dilation` from `shape`; `bias` None means no bias). Overwrites
    /// `output`. `workspace` is scratch of [`Conv2dShape::workspace_len`] f32, contents ignored.
    /// With zero input channels the output is the bias (or zeros).
    ///
    /// # Panics
    /// If a slice's length disagrees with `shape` (the message names it, the expected and the
    /// actual length): input [`Conv2dShape::input_len`], weight [`Conv2dShape::weight_len`],
    /// bias `out_channels`, output [`Conv2dShape::output_len`], workspace
    /// [`Conv2dShape::workspace_len`]; or if the shape is invalid: a stride, dilation or kernel
    /// size of 0, or an empty output (see [`Conv2dShape::out_h`]).
    #[track_caller]
    pub fn conv2d_forward(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        output: &mut [f32],
        workspace: &mut [f32],
    ) {
        // Every length this call may compute, in checked arithmetic, before any is used: the
        // panic is `Conv2dShape::check`'s error.
        crate::or_panic(shape.check());
        let n = shape.out_plane_len();
        check_len("conv2d_forward: input", shape.input_len(), input.len());
        check_len("conv2d_forward: weight", shape.weight_len(), weight.len());
        if let Some(bias) = bias {
            check_len("conv2d_forward: bias", shape.out_channels, bias.len());
        }
        check_len("conv2d_forward: output", shape.output_len(), output.len());
        check_len(
            "conv2d_forward: workspace",
            shape.workspace_len(),
            workspace.len(),
        );
        if output.is_empty() {
            return; // no image or no output channel: nothing to compute
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(channels) = self.channel_path(shape) {
            channels.assert_channel_invariants(workspace.len());
            // SAFETY: this table is AVX-512's or AVX2's (`channel_path`), which
            // `Kernels::for_isa` built only after checking the CPU supports it; every length
            // was checked above against its shape (each computed in checked arithmetic, so
            // none wrapped); `assert_channel_invariants` just checked what the bodies rely on
            // from this module: the channel-path rule (kernel, out_w, out_channels bounds,
            // stride and dilation 1), the padded planes' geometry and a workspace of at least
            // `channel_workspace_len`.
            unsafe {
                if self.isa() == Isa::Avx512 {
                    avx512::channels_forward(&channels, input, weight, bias, output, workspace)
                } else {
                    avx2::channels_forward(&channels, input, weight, bias, output, workspace)
                }
            };
            return;
        }
        if let Some(direct) = Direct::new(shape) {
            direct.assert_direct_invariants(workspace.len());
            // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
            // table's ISA; every length was checked above against the shape `direct` describes
            // (in checked arithmetic); `assert_direct_invariants` just checked the padded
            // planes' geometry and that the workspace holds the padded planes, their slack and
            // the partial sums.
            unsafe { (self.conv.direct_forward)(&direct, input, weight, bias, output, workspace) };
            return;
        }
        let (k, cout) = (shape.col_rows(), shape.out_channels);
        let (image_len, out_image_len) = (shape.image_len(), shape.output_image_len());
        let per_tile = shape.images_per_tile();
        let (cols, tile_out) = workspace.split_at_mut(per_tile * shape.col_len());
        for (first, count) in tiles(shape.batch, per_tile) {
            // The tile's columns side by side: cols[K, count * N], image i in columns i * N...
            let ld = count * n;
            let cols = &mut cols[..k * ld];
            for i in 0..count {
                let image = &input[(first + i) * image_len..][..image_len];
                im2col_strided(shape, image, &mut cols[i * n..], ld);
            }
            // One image writes its output in place; a tile's output [Cout, count * N] goes
            // through the buffer and is then scattered to the images.
            let out = if count == 1 {
                &mut output[first * out_image_len..][..out_image_len]
            } else {
                &mut tile_out[..cout * ld]
            };
            let beta = match bias {
                Some(bias) => {
                    for (row, &v) in out.chunks_exact_mut(ld).zip(bias) {
                        row.fill(v);
                    }
                    1.0
                }
                None => 0.0,
            };
            self.sgemm(
                Transpose::No,
                Transpose::No,
                cout,
                ld,
                k,
                1.0,
                weight,
                k,
                cols,
                ld,
                beta,
                out,
                ld,
            );
            if count > 1 {
                let images = &mut output[first * out_image_len..][..count * out_image_len];
                scatter_tile(&tile_out[..cout * ld], cout, n, images);
            }
        }
    }

    /// Convolution backward: from `grad_output` (the gradient of the loss with respect to the
    /// forward's output), overwrites each gradient given: `grad_input` (None skips it, as for a
    /// first layer whose input is the image), `grad_weight` and `grad_bias` (None when the layer
    /// has no bias). `input` and `weight` are the forward's. `workspace` is scratch of
    /// [`Conv2dShape::workspace_len`] f32. With a batch of 0 the gradients are zero.
    ///
    /// # Panics
    /// If a slice's length disagrees with `shape` (the message names it, the expected and the
    /// actual length): input and grad_input [`Conv2dShape::input_len`], weight and grad_weight
    /// [`Conv2dShape::weight_len`], grad_output [`Conv2dShape::output_len`], grad_bias
    /// `out_channels`, workspace [`Conv2dShape::workspace_len`]; or if the shape is invalid (see
    /// [`Conv2dShape::out_h`]).
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn conv2d_backward(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        weight: &[f32],
        grad_output: &[f32],
        mut grad_input: Option<&mut [f32]>,
        grad_weight: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) {
        crate::or_panic(shape.check()); // as in `conv2d_forward`
        let n = shape.out_plane_len();
        check_len("conv2d_backward: input", shape.input_len(), input.len());
        check_len("conv2d_backward: weight", shape.weight_len(), weight.len());
        check_len(
            "conv2d_backward: grad_output",
            shape.output_len(),
            grad_output.len(),
        );
        if let Some(gi) = grad_input.as_deref() {
            check_len("conv2d_backward: grad_input", shape.input_len(), gi.len());
        }
        check_len(
            "conv2d_backward: grad_weight",
            shape.weight_len(),
            grad_weight.len(),
        );
        if let Some(gb) = grad_bias.as_deref() {
            check_len("conv2d_backward: grad_bias", shape.out_channels, gb.len());
        }
        check_len(
            "conv2d_backward: workspace",
            shape.workspace_len(),
            workspace.len(),
        );

        // The AVX-512 direct path sums the bias gradient in its weight-gradient pass.
        #[cfg(target_arch = "x86_64")]
        let fused_bias = self.isa() == Isa::Avx512
            && self.channel_path(shape).is_none()
            && Direct::new(shape).is_some();
        #[cfg(not(target_arch = "x86_64"))]
        let fused_bias = false;
        let mut grad_bias = grad_bias;
        if !fused_bias || shape.batch == 0 {
            if let Some(gb) = grad_bias.take() {
                self.bias_backward(grad_output, gb, shape.batch, n);
            }
        }
        if shape.batch == 0 {
            grad_weight.fill(0.0);
            return;
        }
        if grad_output.is_empty() {
            // No output channel: every gradient is an empty sum.
            grad_weight.fill(0.0);
            if let Some(gi) = grad_input {
                gi.fill(0.0);
            }
            return;
        }
        let (k, cout) = (shape.col_rows(), shape.out_channels);
        let (image_len, out_image_len) = (shape.image_len(), shape.output_image_len());
        #[cfg(target_arch = "x86_64")]
        if let Some(channels) = self.channel_path(shape) {
            channels.assert_channel_invariants(workspace.len());
            // SAFETY: as in `conv2d_forward`: an AVX-512 or AVX2 table on a CPU checked for
            // it, lengths checked above in checked arithmetic, and the channel-path rule,
            // padded geometry and workspace size just asserted (`assert_channel_invariants`).
            unsafe {
                if self.isa() == Isa::Avx512 {
                    avx512::channels_backward_weight(
                        &channels,
                        input,
                        grad_output,
                        grad_weight,
                        workspace,
                    )
                } else {
                    avx2::channels_backward_weight(
                        &channels,
                        input,
                        grad_output,
                        grad_weight,
                        workspace,
                    )
                }
            };
            // AVX2 runs the input gradient on its direct forward kernel (the transposed
            // convolution) or, where that has more than AVX2_DIRECT_DX_MAX_K taps per output
            // value and the shape's other path is GEMM (so the workspace holds a GEMM tile),
            // on GEMM and col2im (measured faster there; see the module docs); AVX-512 has a
            // block of its own.
            let unfolded_dx = self.isa() != Isa::Avx512
                && Direct::new(shape).is_none()
                && cout * shape.kernel_h * shape.kernel_w > AVX2_DIRECT_DX_MAX_K;
            match (grad_input, channels.transposed()) {
                (Some(gi), _) if unfolded_dx => {
                    self.unfolded_backward_input(shape, weight, grad_output, gi, workspace)
                }
                (Some(gi), Some(t)) if self.isa() == Isa::Avx512 => {
                    t.assert_transposed_invariants(&channels, workspace.len());
                    let (flipped, rest) = workspace.split_at_mut(shape.weight_len());
                    channels.flip_weight(weight, flipped);
                    // SAFETY: as above; `t` is the transposed convolution of a channel-path
                    // shape, whose input is grad_output, weight `flipped`, output grad_input
                    // (lengths fixed by `shape`, checked above) and whose padded planes fit in
                    // `rest` (`assert_transposed_invariants` just checked the workspace holds
                    // the flipped weight and `t`'s padded planes, and `t`'s geometry).
                    unsafe { avx512::channels_backward_input(&t, grad_output, flipped, gi, rest) };
                }
                (Some(gi), _) => {
                    self.direct_backward_input(&channels, weight, grad_output, gi, workspace)
                }
                (None, _) => {}
            }
            return;
        }
        if let Some(direct) = Direct::new(shape) {
            self.direct_backward_weight(
                &direct,
                input,
                grad_output,
                grad_weight,
                grad_bias,
                workspace,
            );
            if let Some(gi) = grad_input {
                self.direct_backward_input(&direct, weight, grad_output, gi, workspace);
            }
            return;
        }
        // col2im adds into the input gradient: it starts at zero.
        if let Some(gi) = grad_input.as_deref_mut() {
            gi.fill(0.0);
        }
        let per_tile = shape.images_per_tile();
        let (cols, tile_dy) = workspace.split_at_mut(per_tile * shape.col_len());
        for (first, count) in tiles(shape.batch, per_tile) {
            let ld = count * n;
            let cols = &mut cols[..k * ld];
            for i in 0..count {
                let image = &input[(first + i) * image_len..][..image_len];
                im2col_strided(shape, image, &mut cols[i * n..], ld);
            }
            // dy for the tile as one matrix [Cout, count * N] (one image's is already one).
            let dy_images = &grad_output[first * out_image_len..][..count * out_image_len];
            let dy: &[f32] = if count == 1 {
                dy_images
            } else {
                gather_tile(dy_images, cout, n, &mut tile_dy[..cout * ld]);
                &tile_dy[..cout * ld]
            };
            // grad_weight[Cout, K] (+)= dy[Cout, count * N] x cols[K, count * N]^T
            self.sgemm(
                Transpose::No,
                Transpose::Yes,
                cout,
                k,
                ld,
                1.0,
                dy,
                ld,
                cols,
                ld,
                if first == 0 { 0.0 } else { 1.0 },
                grad_weight,
                k,
            );
            if let Some(gi) = grad_input.as_deref_mut() {
                // grad_cols[K, count * N] = weight[Cout, K]^T x dy, then fold into the images.
                self.sgemm(
                    Transpose::Yes,
                    Transpose::No,
                    k,
                    ld,
                    cout,
                    1.0,
                    weight,
                    k,
                    dy,
                    ld,
                    0.0,
                    cols,
                    ld,
                );
                for i in 0..count {
                    let image = &mut gi[(first + i) * image_len..][..image_len];
                    col2im_strided(shape, &cols[i * n..], ld, image);
                }
            }
        }
    }
}

impl Kernels {
    /// The channel path's geometry if this table takes it for `shape`.
    #[cfg(target_arch = "x86_64")]
    fn channel_path(&self, shape: &Conv2dShape) -> Option<Direct> {
        shape
            .takes_channel_path(self.isa())
            .then(|| Direct::channels(shape))
            .flatten()
    }

    /// The input gradient of the GEMM path alone (see [`Kernels::conv2d_backward`]): per tile
    /// of images, `grad_cols = weight^T x dy`, folded back by col2im. Overwrites `grad_input`.
    /// The caller checked every length against `shape`, and `workspace` holds at least
    /// `unfolded_or_direct_workspace_len` of a shape that takes the GEMM path.
    #[cfg(target_arch = "x86_64")]
    fn unfolded_backward_input(
        &self,
        shape: &Conv2dShape,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        workspace: &mut [f32],
    ) {
        let n = shape.out_plane_len();
        let (k, cout) = (shape.col_rows(), shape.out_channels);
        let (image_len, out_image_len) = (shape.image_len(), shape.output_image_len());
        grad_input.fill(0.0);
        let per_tile = shape.images_per_tile();
        let (cols, tile_dy) = workspace.split_at_mut(per_tile * shape.col_len());
        for (first, count) in tiles(shape.batch, per_tile) {
            let ld = count * n;
            let dy_images = &grad_output[first * out_image_len..][..count * out_image_len];
            let dy: &[f32] = if count == 1 {
                dy_images
            } else {
                gather_tile(dy_images, cout, n, &mut tile_dy[..cout * ld]);
                &tile_dy[..cout * ld]
            };
            let cols = &mut cols[..k * ld];
            self.sgemm(
                Transpose::Yes,
                Transpose::No,
                k,
                ld,
                cout,
                1.0,
                weight,
                k,
                dy,
                ld,
                0.0,
                cols,
                ld,
            );
            for i in 0..count {
                let image = &mut grad_input[(first + i) * image_len..][..image_len];
                col2im_strided(shape, &cols[i * n..], ld, image);
            }
        }
    }

    /// The direct path's weight gradient, and the bias gradient with it where `grad_bias` is
    /// given (only on the AVX-512 table: the others sum it in `bias_backward` beforehand). The
    /// caller checked every length against `direct.shape`.
    fn direct_backward_weight(
        &self,
        direct: &Direct,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) {
        direct.assert_direct_invariants(workspace.len());
        #[cfg(target_arch = "x86_64")]
        if let Some(gb) = grad_bias {
            assert_eq!(
                self.isa(),
                Isa::Avx512,
                "a fused bias gradient is AVX-512's"
            );
            check_len(
                "conv2d_backward: grad_bias",
                direct.shape.out_channels,
                gb.len(),
            );
            // SAFETY: this table is AVX-512's (asserted), which `Kernels::for_isa` built only
            // after checking the CPU supports it; the caller checked every length against the
            // shape `direct` describes, grad_bias's just above, and `assert_direct_invariants`
            // the padded geometry and the workspace.
            unsafe {
                avx512::direct_backward_weight_bias(
                    direct,
                    input,
                    grad_output,
                    grad_weight,
                    gb,
                    workspace,
                )
            };
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        debug_assert!(grad_bias.is_none());
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA; the caller checked every length against the shape `direct` describes,
        // and `assert_direct_invariants` (above) the padded geometry and the workspace.
        unsafe {
            (self.conv.direct_backward_weight)(direct, input, grad_output, grad_weight, workspace)
        };
    }

    /// The input gradient of a stride-1, dilation-1 convolution (the direct and the channel
    /// paths): the transposed convolution on the table's direct forward kernel, or, where a
    /// padding is not below its kernel size, GEMM and col2im one image at a time. Overwrites
    /// `grad_input`. The caller checked every length against `direct.shape`, and `workspace`
    /// holds at least `direct.input_gradient_len()`.
    fn direct_backward_input(
        &self,
        direct: &Direct,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        workspace: &mut [f32],
    ) {
        let shape = &direct.shape;
        if let Some(t) = direct.transposed() {
            t.assert_transposed_invariants(direct, workspace.len());
            let (flipped, rest) = workspace.split_at_mut(shape.weight_len());
            direct.flip_weight(weight, flipped);
            // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
            // table's ISA; `t` is the transposed convolution, whose input is grad_output, weight
            // `flipped`, output grad_input (checked by the caller for `shape`, which fixes
            // their lengths for `t`); `assert_transposed_invariants` just checked that and
            // that its padded planes fit in `rest`.
            unsafe { (self.conv.direct_forward)(&t, grad_output, flipped, None, grad_input, rest) };
            return;
        }
        // grad_cols[K, N] = weight[Cout, K]^T x dy[Cout, N] per image, folded back.
        let (k, cout, n) = (shape.col_rows(), shape.out_channels, direct.out_plane_len());
        let (image_len, out_image_len) = (shape.image_len(), shape.output_image_len());
        let cols = &mut workspace[..shape.col_len()];
        grad_input.fill(0.0);
        for b in 0..shape.batch {
            let dy = &grad_output[b * out_image_len..][..out_image_len];
            let image = &mut grad_input[b * image_len..][..image_len];
            self.sgemm(
                Transpose::Yes,
                Transpose::No,
                k,
                n,
                cout,
                1.0,
                weight,
                k,
                dy,
                n,
                0.0,
                cols,
                n,
            );
            col2im_strided(shape, cols, n, image);
        }
    }
}

/// The batch's images in tiles of at most `per_tile`, as even as possible (sizes differ by at
/// most one): `(first image, images)` of each.
fn tiles(batch: usize, per_tile: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = batch.div_ceil(per_tile);
    (0..count).map(move |t| {
        let (start, end) = (t * batch / count, (t + 1) * batch / count);
        (start, end - start)
    })
}

/// Copies a tile's output `tile[Cout, count * plane]` (image i in columns `i * plane..`) to the
/// images' NCHW outputs `images[count, Cout, plane]`.
fn scatter_tile(tile: &[f32], cout: usize, plane: usize, images: &mut [f32]) {
    let count = images.len() / (cout * plane).max(1);
    let ld = count * plane;
    for i in 0..count {
        for c in 0..cout {
            images[(i * cout + c) * plane..][..plane]
                .copy_from_slice(&tile[c * ld + i * plane..][..plane]);
        }
    }
}

/// The inverse of [`scatter_tile`]: gathers the images' `images[count, Cout, plane]` into one
/// matrix `tile[Cout, count * plane]`.
fn gather_tile(images: &[f32], cout: usize, plane: usize, tile: &mut [f32]) {
    let count = images.len() / (cout * plane).max(1);
    let ld = count * plane;
    for i in 0..count {
        for c in 0..cout {
            tile[c * ld + i * plane..][..plane]
                .copy_from_slice(&images[(i * cout + c) * plane..][..plane]);
        }
    }
}
