//! The slices a convolution kernel of the table takes, bundled so every table entry and body
//! has one signature per pass. The entry points build them after checking every length against
//! the shape; the kernels rely on those lengths (see each entry's `# Safety`).

/// A forward pass, or an input gradient run as the forward of the transposed convolution
/// (`input` the output gradient, `weight` the flipped weight, `output` the input gradient, no
/// bias). Overwrites `output`; `workspace` is scratch.
pub(crate) struct Forward<'a> {
    pub(crate) input: &'a [f32],
    pub(crate) weight: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) output: &'a mut [f32],
    pub(crate) workspace: &'a mut [f32],
}

/// A weight-gradient pass: overwrites `grad_weight`, and `grad_bias` where given (only the
/// table's fused entry is given one); `workspace` is scratch.
pub(crate) struct WeightGradient<'a> {
    pub(crate) input: &'a [f32],
    pub(crate) grad_output: &'a [f32],
    pub(crate) grad_weight: &'a mut [f32],
    pub(crate) grad_bias: Option<&'a mut [f32]>,
    pub(crate) workspace: &'a mut [f32],
}
