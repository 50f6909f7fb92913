//! 2-D convolution, PyTorch's `conv2d`: input `[batch, in_channels, in_h, in_w]`, weight
//! `[out_channels, in_channels, kernel_h, kernel_w]`, bias `[out_channels]`, output
//! `[batch, out_channels, out_h, out_w]`, all contiguous NCHW; zero padding, stride, dilation;
//! `out = (in + 2 pad - dilation (kernel - 1) - 1) / stride + 1` per axis. Forward, and the
//! backward's weight, bias and (optional) input gradients. Every path gives PyTorch's results
//! within f32 summation error; the direct-loop references (the oracle) are in [`scalar`].
//!
//! # Paths
//!
//! [`plan`](self) picks one path per call from the shape and the table:
//!
//! - channel (`channel_avx2.rs`, `channel_avx512.rs`; LeNet's conv2): output channels in the
//!   lanes, 16 per group, an in-register transpose back to NCHW, nothing unfolded;
//! - direct (`direct.rs`; LeNet's conv1): a block of output channels x vectors along a row in
//!   registers, one broadcast weight per channel and tap;
//! - unfolded (`unfold.rs`, `unfolded.rs`): [`im2col`] of a tile of images and GEMM, and for
//!   the backward [`col2im`].
//!
//! The input gradient of the channel and direct paths is the transposed convolution
//! (`geometry.rs`), on the direct forward kernel or the row blocks of `rows.rs`.
//!
//! # Workspace and invariants
//!
//! The caller owns the scratch, [`Conv2dShape::workspace_len`] floats, computed with checked
//! arithmetic from the shape alone (not the table): the largest any path of the shape needs, so
//! one buffer serves forward and backward and a training loop allocates nothing per step. It
//! grows with `batch` only up to the unfolded path's tile bound, so a workspace for the largest
//! batch serves smaller ones. Before any `unsafe` call the entry points check every slice
//! length against the shape and assert the path's geometry invariants (`geometry.rs`).
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

mod args;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod channel;
mod direct;
mod direct_scalar;
mod geometry;
mod plan;
mod pooled;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod rows;
mod unfold;
mod unfolded;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod channel_avx2;
#[cfg(target_arch = "x86_64")]
mod channel_avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use plan::rules;
pub use pooled::PooledConv2dShape;
pub use shape::Conv2dShape;
pub use unfold::{col2im, im2col};

use args::{Forward, WeightGradient};
use geometry::Direct;
use plan::{InputGradient, Path, Plan};

use crate::{check_len, kernel_table, Isa, Kernels};

kernel_table! {
    /// Per-ISA entries of the convolution: each takes the path's geometry (or the transposed
    /// convolution's) and the call's slices, whose lengths the entry points checked against it
    /// and whose invariants they asserted. `direct_backward_weight_bias` also sums the bias
    /// gradient (a table has it where that is faster than a separate pass).
    pub(crate) struct Table {
        direct_forward: unsafe fn(&Direct, Forward<'_>),
        direct_backward_weight: unsafe fn(&Direct, WeightGradient<'_>),
    }
    optional {
        direct_backward_weight_bias: unsafe fn(&Direct, WeightGradient<'_>),
        channels_forward: unsafe fn(&Direct, Forward<'_>),
        channels_backward_weight: unsafe fn(&Direct, WeightGradient<'_>),
        rows_backward_input: unsafe fn(&Direct, Forward<'_>),
    }
}

pub(crate) fn table(isa: Isa) -> Table {
    match isa {
        Isa::Scalar => Table {
            direct_forward: direct_scalar::direct_forward,
            direct_backward_weight: direct_scalar::direct_backward_weight,
            direct_backward_weight_bias: None,
            channels_forward: None,
            channels_backward_weight: None,
            rows_backward_input: None,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Table {
            direct_forward: avx2::direct_forward,
            direct_backward_weight: avx2::direct_backward_weight,
            direct_backward_weight_bias: None,
            channels_forward: Some(channel_avx2::channels_forward),
            channels_backward_weight: Some(channel_avx2::channels_backward_weight),
            rows_backward_input: Some(avx2::rows_backward_input),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Table {
            direct_forward: avx512::direct_forward,
            direct_backward_weight: avx512::direct_backward_weight,
            direct_backward_weight_bias: Some(avx512::direct_backward_weight),
            channels_forward: Some(channel_avx512::channels_forward),
            channels_backward_weight: Some(channel_avx512::channels_backward_weight),
            rows_backward_input: Some(avx512::rows_backward_input),
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Table {
            direct_forward: neon::direct_forward,
            direct_backward_weight: neon::direct_backward_weight,
            direct_backward_weight_bias: None,
            channels_forward: None,
            channels_backward_weight: None,
            rows_backward_input: None,
        },
        #[allow(unreachable_patterns)]
        _ => unreachable!("{isa} is not an ISA of this architecture"),
    }
}

/// The table of `isa` if this architecture has one (the CPU is not checked: for plans only).
fn table_of(isa: Isa) -> Option<Table> {
    isa.of_this_arch().then(|| table(isa))
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
        let plan = Plan::new(shape, &self.conv);
        if let Path::Unfolded { per_tile } = plan.path {
            self.unfolded_forward(shape, per_tile, input, weight, bias, output, workspace);
            return;
        }
        let ws_len = workspace.len();
        let args = Forward {
            input,
            weight,
            bias,
            output,
            workspace,
        };
        match plan.path {
            Path::Channel(channels) => {
                channels.assert_channel_invariants(ws_len);
                let forward = self.conv.channels_forward.expect("a channel plan's kernel");
                // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports
                // the table's ISA; every length was checked above against its shape (each
                // computed in checked arithmetic, so none wrapped); `assert_channel_invariants`
                // just checked what the bodies rely on: the channel-path rule, the padded
                // planes' geometry and a workspace of at least `channel_workspace_len`.
                unsafe { forward(&channels, args) };
            }
            Path::Direct(direct) => {
                direct.assert_direct_invariants(ws_len);
                // SAFETY: as above; `assert_direct_invariants` just checked the padded planes'
                // geometry and that the workspace holds the padded planes, their slack and the
                // partial sums.
                let forward = self.conv.direct_forward;
                unsafe { forward(&direct, args) };
            }
            Path::Unfolded { .. } => unreachable!("run above"),
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
        grad_input: Option<&mut [f32]>,
        grad_weight: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) {
        crate::or_panic(shape.check()); // as in `conv2d_forward`
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

        let plan = Plan::new(shape, &self.conv);
        let mut grad_bias = grad_bias;
        if !plan.fused_bias || shape.batch == 0 {
            if let Some(gb) = grad_bias.take() {
                self.bias_backward(grad_output, gb, shape.batch, shape.out_plane_len());
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
        match plan.path {
            Path::Unfolded { per_tile } => {
                let (x, w, dy, gw) = (input, weight, grad_output, grad_weight);
                self.unfolded_backward(shape, per_tile, x, w, dy, grad_input, gw, workspace);
                return;
            }
            Path::Channel(channels) => {
                channels.assert_channel_invariants(workspace.len());
                let backward = self.conv.channels_backward_weight;
                let backward = backward.expect("a channel plan's kernel");
                let args = WeightGradient {
                    input,
                    grad_output,
                    grad_weight,
                    grad_bias: None,
                    workspace: &mut *workspace,
                };
                // SAFETY: as in `conv2d_forward`: a table built for a CPU checked for its ISA,
                // lengths checked above in checked arithmetic, and the channel-path rule,
                // padded geometry and workspace size just asserted.
                unsafe { backward(&channels, args) };
            }
            Path::Direct(direct) => {
                direct.assert_direct_invariants(workspace.len());
                // The plan fuses the bias only on a table with the fused entry.
                let backward = match grad_bias {
                    Some(_) => self
                        .conv
                        .direct_backward_weight_bias
                        .expect("a fused plan's kernel"),
                    None => self.conv.direct_backward_weight,
                };
                let args = WeightGradient {
                    input,
                    grad_output,
                    grad_weight,
                    grad_bias,
                    workspace: &mut *workspace,
                };
                // SAFETY: as in `conv2d_forward`; grad_bias's length was checked above.
                unsafe { backward(&direct, args) };
            }
        }
        if let Some(gi) = grad_input {
            self.backward_input(
                shape,
                plan.input_gradient,
                weight,
                grad_output,
                gi,
                workspace,
            );
        }
    }

    /// The input gradient of the channel and direct paths (overwritten), as the plan says. The
    /// caller checked every length against `shape`.
    fn backward_input(
        &self,
        shape: &Conv2dShape,
        how: InputGradient,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        workspace: &mut [f32],
    ) {
        let (t, of, rows) = match how {
            InputGradient::Transposed { t, of, rows } => (t, of, rows),
            InputGradient::Unfolded { per_tile } => {
                let (w, dy, gi) = (weight, grad_output, grad_input);
                return self.unfolded_backward_input(shape, per_tile, w, dy, gi, workspace);
            }
        };
        t.assert_transposed_invariants(&of, workspace.len());
        let (flipped, rest) = workspace.split_at_mut(shape.weight_len());
        of.flip_weight(weight, flipped);
        let args = Forward {
            input: grad_output,
            weight: flipped,
            bias: None,
            output: grad_input,
            workspace: rest,
        };
        let kernel = match rows {
            true => self.conv.rows_backward_input.expect("a row plan's kernel"),
            false => self.conv.direct_forward,
        };
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA; `t` is the transposed convolution, whose input is grad_output, weight
        // `flipped`, output grad_input (checked by the caller for `shape`, which fixes their
        // lengths for `t`); `assert_transposed_invariants` just checked that, `t`'s geometry,
        // and that its padded planes fit in `rest`. The plan chose row blocks only on a table
        // that has them, for a channel-path shape.
        unsafe { kernel(&t, args) }
    }
}
