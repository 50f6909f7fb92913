//! The kernel operations the layers need, behind one trait, so the same layer and model code
//! runs in `f32` on the SIMD kernels (training) and in `f64` on the scalar references
//! (gradient checks).
//!
//! - [`Kernels`] implements `Backend<f32>`: the table of the ISA chosen at run time.
//! - [`Reference`] implements `Backend<T>` for `f32` and `f64`: the kernel crate's scalar
//!   references (`gemm::scalar`, `conv::scalar`, ...), the oracle the SIMD kernels are proven
//!   against.
//!
//! Lengths are the callers' responsibility here, as in the kernel crate (a mismatch panics):
//! the layers check every slice against its shape, with an [`Error`](crate::Error), before they
//! call a backend.

use simdnet_kernels::conv::{Conv2dShape, PooledConv2dShape};
use simdnet_kernels::cross_entropy::GradOutput;
use simdnet_kernels::gemm::{Epilogue, Transpose};
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::sgd::SgdOptions;
use simdnet_kernels::{avgpool, bias, conv, cross_entropy, gemm, maxpool, relu, sgd};
use simdnet_kernels::{Kernels, Real};

pub use simdnet_kernels::cross_entropy::{
    CrossEntropyError, CrossEntropyOptions, Reduction, Targets,
};

/// The operations LeNet-5's layers, loss and optimizer run on. Every method has the semantics
/// of the kernel of the same name in `simdnet-kernels`.
pub trait Backend<T: Real>: Copy + Send + Sync {
    /// A short name for reports (`"avx2"`, `"scalar"`, `"reference"`).
    fn name(&self) -> String;

    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        lda: usize,
        b: &[T],
        ldb: usize,
        beta: T,
        c: &mut [T],
        ldc: usize,
    );

    /// Elements of the workspace [`Backend::conv2d_forward`] and [`Backend::conv2d_backward`]
    /// need for `shape`.
    fn conv2d_workspace_len(&self, shape: &Conv2dShape) -> usize;

    fn conv2d_forward(
        &self,
        shape: &Conv2dShape,
        input: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        output: &mut [T],
        workspace: &mut [T],
    );

    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward(
        &self,
        shape: &Conv2dShape,
        input: &[T],
        weight: &[T],
        grad_output: &[T],
        grad_input: Option<&mut [T]>,
        grad_weight: &mut [T],
        grad_bias: Option<&mut [T]>,
        workspace: &mut [T],
    );

    fn bias_add(&self, x: &mut [T], bias: &[T], batch: usize, spatial: usize);
    fn bias_backward(&self, grad_output: &[T], grad_bias: &mut [T], batch: usize, spatial: usize);

    fn relu_forward(&self, input: &[T], output: &mut [T]);
    fn relu_forward_in_place(&self, x: &mut [T]);
    fn relu_backward(&self, output: &[T], grad_output: &[T], grad_input: &mut [T]);

    fn maxpool2d_forward(
        &self,
        shape: &Pool2dShape,
        input: &[T],
        output: &mut [T],
        argmax: &mut [u32],
    );
    fn maxpool2d_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[T],
        argmax: &[u32],
        grad_input: &mut [T],
    );

    /// Elements of the workspace [`Backend::conv2d_relu_maxpool2d_forward`] needs for `shape`.
    fn conv2d_relu_maxpool2d_workspace_len(&self, shape: &PooledConv2dShape) -> usize;

    /// Convolution + bias + ReLU + max pooling in one call: the pooled output and its argmax,
    /// never the convolution's full output (the SIMD kernels); bit-identical to the chain.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_relu_maxpool2d_forward(
        &self,
        shape: &PooledConv2dShape,
        input: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        pooled: &mut [T],
        argmax: &mut [u32],
        workspace: &mut [T],
    );

    /// The gradient with respect to the ReLU's input of max pooling of `relu(z)`, from the
    /// pooled `output` (ReLU backward and max-pool backward in one pass).
    fn maxpool2d_relu_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[T],
        argmax: &[u32],
        output: &[T],
        grad_input: &mut [T],
    );
    fn avgpool2d_forward(&self, shape: &Pool2dShape, input: &[T], output: &mut [T]);
    fn avgpool2d_backward(&self, shape: &Pool2dShape, grad_output: &[T], grad_input: &mut [T]);

    /// The reduced loss; with `grad` also the gradient with respect to the logits, scaled by
    /// `grad_output`. Per-row losses go to `row_losses` when given.
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy(
        &self,
        logits: &[T],
        classes: usize,
        targets: Targets<'_, T>,
        options: &CrossEntropyOptions<'_, T>,
        grad: Option<(T, &mut [T])>,
        row_losses: Option<&mut [T]>,
    ) -> Result<T, CrossEntropyError>;

    /// One SGD step for one tensor (the buffer is `None` iff momentum is 0).
    fn sgd_step(
        &self,
        options: &SgdOptions,
        param: &mut [T],
        grad: &[T],
        momentum_buffer: Option<&mut [T]>,
        first_step: bool,
    );

    /// `C = op(A) op(B) + bias[j]`, then ReLU when `relu` (C `m x n`, bias by column, length
    /// n): `gemm` with alpha 1 and beta 0, `bias_add` on each row and `relu_forward_in_place`,
    /// with the same bits, the kernels fusing the last two into the GEMM's stores.
    #[allow(clippy::too_many_arguments)]
    fn gemm_bias_relu(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        a: &[T],
        lda: usize,
        b: &[T],
        ldb: usize,
        c: &mut [T],
        ldc: usize,
        bias: &[T],
        relu: bool,
    );
}

/// The kernel crate's scalar references, in any precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reference;

impl Backend<f32> for Kernels {
    fn name(&self) -> String {
        self.isa().to_string()
    }

    fn gemm(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
    ) {
        self.sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    fn conv2d_workspace_len(&self, shape: &Conv2dShape) -> usize {
        shape.workspace_len()
    }

    fn conv2d_forward(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        output: &mut [f32],
        workspace: &mut [f32],
    ) {
        Kernels::conv2d_forward(self, shape, input, weight, bias, output, workspace);
    }

    fn conv2d_backward(
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
        Kernels::conv2d_backward(
            self,
            shape,
            input,
            weight,
            grad_output,
            grad_input,
            grad_weight,
            grad_bias,
            workspace,
        );
    }

    fn bias_add(&self, x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
        Kernels::bias_add(self, x, bias, batch, spatial);
    }

    fn bias_backward(
        &self,
        grad_output: &[f32],
        grad_bias: &mut [f32],
        batch: usize,
        spatial: usize,
    ) {
        Kernels::bias_backward(self, grad_output, grad_bias, batch, spatial);
    }

    fn relu_forward(&self, input: &[f32], output: &mut [f32]) {
        Kernels::relu_forward(self, input, output);
    }

    fn relu_forward_in_place(&self, x: &mut [f32]) {
        Kernels::relu_forward_in_place(self, x);
    }

    fn relu_backward(&self, output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
        Kernels::relu_backward(self, output, grad_output, grad_input);
    }

    fn maxpool2d_forward(
        &self,
        shape: &Pool2dShape,
        input: &[f32],
        output: &mut [f32],
        argmax: &mut [u32],
    ) {
        Kernels::maxpool2d_forward(self, shape, input, output, argmax);
    }

    fn maxpool2d_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[f32],
        argmax: &[u32],
        grad_input: &mut [f32],
    ) {
        Kernels::maxpool2d_backward(self, shape, grad_output, argmax, grad_input);
    }

    fn conv2d_relu_maxpool2d_workspace_len(&self, shape: &PooledConv2dShape) -> usize {
        shape.workspace_len()
    }

    fn conv2d_relu_maxpool2d_forward(
        &self,
        shape: &PooledConv2dShape,
        input: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        pooled: &mut [f32],
        argmax: &mut [u32],
        workspace: &mut [f32],
    ) {
        let (x, w, ws) = (input, weight, workspace);
        Kernels::conv2d_relu_maxpool2d_forward(self, shape, x, w, bias, pooled, argmax, ws);
    }

    fn maxpool2d_relu_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[f32],
        argmax: &[u32],
        output: &[f32],
        grad_input: &mut [f32],
    ) {
        Kernels::maxpool2d_relu_backward(self, shape, grad_output, argmax, output, grad_input);
    }

    fn avgpool2d_forward(&self, shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
        Kernels::avgpool2d_forward(self, shape, input, output);
    }

    fn avgpool2d_backward(&self, shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
        Kernels::avgpool2d_backward(self, shape, grad_output, grad_input);
    }

    fn cross_entropy(
        &self,
        logits: &[f32],
        classes: usize,
        targets: Targets<'_, f32>,
        options: &CrossEntropyOptions<'_, f32>,
        grad: Option<(f32, &mut [f32])>,
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        match grad {
            Some((scale, grad_logits)) => self.cross_entropy_forward_backward(
                logits,
                classes,
                targets,
                options,
                GradOutput::Scalar(scale),
                grad_logits,
                row_losses,
            ),
            None => self.cross_entropy_forward(logits, classes, targets, options, row_losses),
        }
    }

    fn sgd_step(
        &self,
        options: &SgdOptions,
        param: &mut [f32],
        grad: &[f32],
        momentum_buffer: Option<&mut [f32]>,
        first_step: bool,
    ) {
        Kernels::sgd_step(self, options, param, grad, momentum_buffer, first_step);
    }

    fn gemm_bias_relu(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        bias: &[f32],
        relu: bool,
    ) {
        let epilogue = Epilogue {
            bias: Some(bias),
            relu,
        };
        self.sgemm_with(
            transa, transb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc, &epilogue,
        );
    }
}

impl<T: Real> Backend<T> for Reference {
    fn name(&self) -> String {
        "reference".to_string()
    }

    fn gemm(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        lda: usize,
        b: &[T],
        ldb: usize,
        beta: T,
        c: &mut [T],
        ldc: usize,
    ) {
        gemm::scalar::gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// The reference convolution loops directly: no workspace.
    fn conv2d_workspace_len(&self, _shape: &Conv2dShape) -> usize {
        0
    }

    fn conv2d_forward(
        &self,
        shape: &Conv2dShape,
        input: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        output: &mut [T],
        _workspace: &mut [T],
    ) {
        conv::scalar::forward(shape, input, weight, bias, output);
    }

    fn conv2d_backward(
        &self,
        shape: &Conv2dShape,
        input: &[T],
        weight: &[T],
        grad_output: &[T],
        grad_input: Option<&mut [T]>,
        grad_weight: &mut [T],
        grad_bias: Option<&mut [T]>,
        _workspace: &mut [T],
    ) {
        if let Some(gi) = grad_input {
            conv::scalar::backward_input(shape, weight, grad_output, gi);
        }
        conv::scalar::backward_weight(shape, input, grad_output, grad_weight);
        if let Some(gb) = grad_bias {
            conv::scalar::backward_bias(shape, grad_output, gb);
        }
    }

    fn bias_add(&self, x: &mut [T], b: &[T], batch: usize, spatial: usize) {
        bias::scalar::add(x, b, batch, spatial);
    }

    fn bias_backward(&self, grad_output: &[T], grad_bias: &mut [T], batch: usize, spatial: usize) {
        bias::scalar::backward(grad_output, grad_bias, batch, spatial);
    }

    fn relu_forward(&self, input: &[T], output: &mut [T]) {
        relu::scalar::forward(input, output);
    }

    fn relu_forward_in_place(&self, x: &mut [T]) {
        relu::scalar::forward_in_place(x);
    }

    fn relu_backward(&self, output: &[T], grad_output: &[T], grad_input: &mut [T]) {
        relu::scalar::backward(output, grad_output, grad_input);
    }

    fn maxpool2d_forward(
        &self,
        shape: &Pool2dShape,
        input: &[T],
        output: &mut [T],
        argmax: &mut [u32],
    ) {
        maxpool::scalar::forward(shape, input, output, argmax);
    }

    fn maxpool2d_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[T],
        argmax: &[u32],
        grad_input: &mut [T],
    ) {
        maxpool::scalar::backward(shape, grad_output, argmax, grad_input);
    }

    /// The reference keeps the convolution's whole output: the workspace holds it.
    fn conv2d_relu_maxpool2d_workspace_len(&self, shape: &PooledConv2dShape) -> usize {
        shape.conv.output_len()
    }

    fn conv2d_relu_maxpool2d_forward(
        &self,
        shape: &PooledConv2dShape,
        input: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        pooled: &mut [T],
        argmax: &mut [u32],
        workspace: &mut [T],
    ) {
        let z = &mut workspace[..shape.conv.output_len()];
        conv::scalar::forward(&shape.conv, input, weight, bias, z);
        maxpool::scalar::relu_forward(&shape.pool, z, pooled, argmax);
    }

    fn maxpool2d_relu_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[T],
        argmax: &[u32],
        output: &[T],
        grad_input: &mut [T],
    ) {
        maxpool::scalar::relu_backward(shape, grad_output, argmax, output, grad_input);
    }

    fn avgpool2d_forward(&self, shape: &Pool2dShape, input: &[T], output: &mut [T]) {
        avgpool::scalar::forward(shape, input, output);
    }

    fn avgpool2d_backward(&self, shape: &Pool2dShape, grad_output: &[T], grad_input: &mut [T]) {
        avgpool::scalar::backward(shape, grad_output, grad_input);
    }

    fn cross_entropy(
        &self,
        logits: &[T],
        classes: usize,
        targets: Targets<'_, T>,
        options: &CrossEntropyOptions<'_, T>,
        grad: Option<(T, &mut [T])>,
        row_losses: Option<&mut [T]>,
    ) -> Result<T, CrossEntropyError> {
        let (scale, grad_logits) = match grad {
            Some((scale, g)) => (scale, Some(g)),
            None => (T::ONE, None),
        };
        cross_entropy::scalar::forward_backward(
            logits,
            classes,
            targets,
            options,
            GradOutput::Scalar(scale),
            grad_logits,
            row_losses,
        )
    }

    fn sgd_step(
        &self,
        options: &SgdOptions,
        param: &mut [T],
        grad: &[T],
        momentum_buffer: Option<&mut [T]>,
        first_step: bool,
    ) {
        sgd::scalar::step(options, param, grad, momentum_buffer, first_step);
    }

    /// The reference GEMM, then the bias and ReLU references on each row of C.
    fn gemm_bias_relu(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        a: &[T],
        lda: usize,
        b: &[T],
        ldb: usize,
        c: &mut [T],
        ldc: usize,
        bias: &[T],
        relu: bool,
    ) {
        let (one, zero) = (T::ONE, T::ZERO);
        gemm::scalar::gemm(transa, transb, m, n, k, one, a, lda, b, ldb, zero, c, ldc);
        if m > 0 && n > 0 {
            for row in c.chunks_mut(ldc).take(m) {
                bias::scalar::add(&mut row[..n], bias, 1, 1);
                if relu {
                    relu::scalar::forward_in_place(&mut row[..n]);
                }
            }
        }
    }
}
