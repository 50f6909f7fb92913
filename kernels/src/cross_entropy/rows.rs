//! The entry points: the loop over a batch's rows (the row kernel for long rows, the block
//! kernel sixteen short rows at a time), the reductions and the per-row bookkeeping.

use super::*;
use crate::{check_len, Kernels};

/// Where pass 2 writes: nowhere, into a separate buffer, or over the logits.
enum Logits<'a> {
    ForwardOnly(&'a [f32]),
    Separate(&'a [f32], &'a mut [f32]),
    InPlace(&'a mut [f32]),
}

impl Logits<'_> {
    fn logits(&self) -> &[f32] {
        match self {
            Logits::ForwardOnly(x) | Logits::Separate(x, _) => x,
            Logits::InPlace(x) => x,
        }
    }
}

impl Kernels {
    /// The loss only (evaluation): no gradient is written, the logits are read once (twice
    /// with label smoothing or probability targets). Per-row losses go to `row_losses` when
    /// given (any reduction). Returns the reduced loss (under [`Reduction::None`], the sum of
    /// the row losses).
    ///
    /// # Errors
    /// PyTorch's errors, in PyTorch's order: `Target 10 is out of bounds.`, a weight of the
    /// wrong length, `label_smoothing` above 1, a batch-size mismatch between logits and
    /// targets, a non-negative `ignore_index` with probability targets. Nothing is written
    /// when an error is returned.
    ///
    /// # Panics
    /// If `classes == 0`, if `logits.len()` (or a probability target's length) is not a
    /// multiple of `classes`, or if `row_losses` does not hold one value per row.
    pub fn cross_entropy_forward(
        &self,
        logits: &[f32],
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        let logits = Logits::ForwardOnly(logits);
        self.cross_entropy_run(logits, classes, targets, options, None, row_losses)
    }

    /// Loss and gradient with respect to the logits in one call; the gradient (scaled by
    /// `grad_output`) overwrites `grad_logits`. Returns the reduced loss (under
    /// [`Reduction::None`], the sum of the row losses, which go to `row_losses`).
    ///
    /// # Errors
    /// As [`Kernels::cross_entropy_forward`]; nothing is written when an error is returned.
    ///
    /// # Panics
    /// As [`Kernels::cross_entropy_forward`], and if `grad_logits.len() != logits.len()`, or
    /// `GradOutput::PerRow` is given with a reduction other than `None` or with a length other
    /// than the number of rows.
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy_forward_backward(
        &self,
        logits: &[f32],
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        grad_logits: &mut [f32],
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        check_len(
            "cross_entropy: grad_logits",
            logits.len(),
            grad_logits.len(),
        );
        let logits = Logits::Separate(logits, grad_logits);
        let grad = Some(grad_output);
        self.cross_entropy_run(logits, classes, targets, options, grad, row_losses)
    }

    /// As [`Kernels::cross_entropy_forward_backward`], the gradient written over the logits.
    ///
    /// # Errors
    /// As [`Kernels::cross_entropy_forward`]; the logits are untouched when an error is
    /// returned.
    ///
    /// # Panics
    /// As [`Kernels::cross_entropy_forward_backward`].
    pub fn cross_entropy_forward_backward_in_place(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        let logits = Logits::InPlace(logits);
        let grad = Some(grad_output);
        self.cross_entropy_run(logits, classes, targets, options, grad, row_losses)
    }

    /// The checks and the row loop shared by the three entry points (`grad_output` is `None`
    /// for the forward only).
    fn cross_entropy_run(
        &self,
        mut logits: Logits<'_>,
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        grad_output: Option<GradOutput<'_>>,
        mut row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        let losses_len = row_losses.as_deref().map(<[f32]>::len);
        let x_len = logits.logits().len();
        let plan = &plan(
            x_len,
            classes,
            &targets,
            options,
            grad_output.as_ref(),
            losses_len,
        )?;
        let grad_output = grad_output.unwrap_or(GradOutput::Scalar(1.0));
        let c = classes;
        let e = plan.smoothing;
        let keep = 1.0 - e;
        let e_over_c = e / c as f64;
        // The reduction's scale of the incoming gradient.
        let batch_scale = match (options.reduction, grad_output) {
            (Reduction::Mean, GradOutput::Scalar(g)) => g as f64 / plan.divisor,
            (_, GradOutput::Scalar(g)) => g as f64,
            (_, GradOutput::PerRow(_)) => 0.0,
        };
        let kernels = &self.cross_entropy;
        let (mut sum_nll, mut sum_smooth) = (0.0f64, 0.0f64);
        // Short rows with class indices and no smoothing: a block at a time, one per lane.
        let mut first_row = 0;
        if let Targets::Indices(t) = targets {
            if e == 0.0 && c <= BLOCK_MAX_CLASSES {
                sum_nll = self.cross_entropy_blocks(
                    &mut logits,
                    c,
                    t,
                    options,
                    grad_output,
                    batch_scale,
                    row_losses.as_deref_mut(),
                );
                first_row = plan.rows;
            }
        }
        for n in first_row..plan.rows {
            let range = n * c..(n + 1) * c;
            let scale = match grad_output {
                GradOutput::PerRow(g) => g[n] as f64,
                GradOutput::Scalar(_) => batch_scale,
            };
            let x = &logits.logits()[range.clone()];
            // What the row's target asks for, before the softmax is known: the gradient is
            // `exp(x_j - m) / S * alpha - beta * c_j`, minus `fix` at the target index.
            let row = RowTarget::new(targets, n, x, &range, options, plan, scale);
            let args = RowArgs {
                alpha: row.alpha as f32,
                beta: row.beta as f32,
                coef: row.coef,
                fix: row.fix,
            };
            // SAFETY: `self` was built by `Kernels::for_isa` (the CPU has the ISA); every slice
            // has the row's length (checked by `plan` and the entry points).
            let RowStats { m, sum: s, acc } = unsafe {
                match &mut logits {
                    Logits::ForwardOnly(x) => (kernels.row)(&x[range.clone()], None, &args),
                    Logits::Separate(x, g) => {
                        (kernels.row)(&x[range.clone()], Some(&mut g[range.clone()]), &args)
                    }
                    Logits::InPlace(x) => (kernels.row_in_place)(&mut x[range.clone()], &args),
                }
            };
            // The row's loss terms from log S, m and acc = sum c_j (x_j - m).
            let log_s = s.ln();
            let (nll, smooth) = match row.kind {
                RowKind::Ignored => (0.0f64, 0.0f64),
                RowKind::Index { w_t, x_t } => {
                    let nll = (w_t * (log_s - (x_t - m))) as f64;
                    let smooth = if e > 0.0 {
                        (log_s * plan.weight_sum as f32 - acc) as f64
                    } else {
                        0.0
                    };
                    (nll, smooth)
                }
                RowKind::Probabilities { total } => ((log_s * total - acc) as f64, 0.0),
            };
            let row_loss = match row.kind {
                RowKind::Index { .. } if e > 0.0 => keep * nll + e_over_c * smooth,
                _ => nll,
            };
            if let Some(r) = row_losses.as_deref_mut() {
                r[n] = row_loss as f32;
            }
            sum_nll += nll;
            sum_smooth += smooth;
        }
        let total = match targets {
            Targets::Indices(_) if e > 0.0 => match options.reduction {
                Reduction::Mean => {
                    keep * (sum_nll / plan.divisor) + (sum_smooth / plan.divisor) * e_over_c
                }
                _ => keep * sum_nll + sum_smooth * e_over_c,
            },
            _ => match options.reduction {
                Reduction::Mean => sum_nll / plan.divisor,
                _ => sum_nll,
            },
        };
        Ok(total as f32)
    }
}

impl Kernels {
    /// Every row through the block kernel (class indices, no smoothing, `C <=
    /// BLOCK_MAX_CLASSES`): the last few rows padded to a whole block in a stack buffer, so a
    /// row's numbers never depend on how the batch was split (lanes do not mix rows). Returns
    /// the sum of the row losses.
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_blocks(
        &self,
        logits: &mut Logits<'_>,
        c: usize,
        t: &[i64],
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        batch_scale: f64,
        mut row_losses: Option<&mut [f32]>,
    ) -> f64 {
        let kernels = &self.cross_entropy;
        let rows_total = t.len();
        // The sums of the row losses lane by lane: sixteen independent additions per block,
        // not one chain through the batch.
        let mut lane_sums = [0.0f64; BLOCK_ROWS];
        let mut first_row = 0;
        while first_row < rows_total {
            let rows = first_row..(first_row + BLOCK_ROWS).min(rows_total);
            let args = block_args(
                &t[rows.clone()],
                rows.start,
                options,
                grad_output,
                batch_scale,
            );
            let span = rows.start * c..rows.end * c;
            let losses = if rows.len() == BLOCK_ROWS {
                // SAFETY: `self` was built by `Kernels::for_isa` (the CPU has the ISA); the
                // slices hold the block's rows; targets were checked by `plan`.
                unsafe {
                    match logits {
                        Logits::ForwardOnly(x) => (kernels.block)(&x[span], c, None, &args),
                        Logits::Separate(x, g) => {
                            (kernels.block)(&x[span.clone()], c, Some(&mut g[span]), &args)
                        }
                        Logits::InPlace(x) => (kernels.block_in_place)(&mut x[span], c, &args),
                    }
                }
            } else {
                // The padding rows are zeros with no loss and no gradient kept.
                let mut padded = [0.0f32; BLOCK_ROWS * BLOCK_MAX_CLASSES];
                let padded = &mut padded[..BLOCK_ROWS * c];
                let used = span.len();
                padded[..used].copy_from_slice(&logits.logits()[span.clone()]);
                // SAFETY: as above; `padded` holds a block's rows.
                let losses = unsafe {
                    match logits {
                        Logits::ForwardOnly(_) => (kernels.block)(padded, c, None, &args),
                        Logits::Separate(..) | Logits::InPlace(_) => {
                            (kernels.block_in_place)(padded, c, &args)
                        }
                    }
                };
                match logits {
                    Logits::ForwardOnly(_) => {}
                    Logits::Separate(_, g) => g[span].copy_from_slice(&padded[..used]),
                    Logits::InPlace(x) => x[span].copy_from_slice(&padded[..used]),
                }
                losses
            };
            if let Some(r) = row_losses.as_deref_mut() {
                r[rows.clone()].copy_from_slice(&losses[..rows.len()]);
            }
            // (Padding rows have a loss of exactly 0.)
            for (sum, &loss) in lane_sums.iter_mut().zip(&losses) {
                *sum += loss as f64;
            }
            first_row = rows.end;
        }
        lane_sums.iter().sum()
    }
}

/// A block's arguments for rows `first..first + t.len()` (at most `BLOCK_ROWS`; the lanes past
/// them are padding: no loss, no gradient). The options are looked at once per block, not per
/// row: without weights or per-row gradients every kept lane has the same `alpha`.
fn block_args(
    t: &[i64],
    first: usize,
    options: &CrossEntropyOptions<'_>,
    grad_output: GradOutput<'_>,
    batch_scale: f64,
) -> BlockArgs {
    let mut args = BlockArgs {
        target: [0; BLOCK_ROWS],
        alpha: [0.0; BLOCK_ROWS],
        weight: [0.0; BLOCK_ROWS],
        keep: [0; BLOCK_ROWS],
    };
    let ignore = options.ignore_index;
    match (options.weight, grad_output) {
        (None, GradOutput::Scalar(_)) => {
            let alpha = batch_scale as f32;
            for (lane, &ti) in t.iter().enumerate() {
                let kept = ti != ignore;
                args.target[lane] = if kept { ti as i32 } else { 0 };
                args.alpha[lane] = if kept { alpha } else { 0.0 };
                args.weight[lane] = 1.0;
                args.keep[lane] = -(kept as i32);
            }
        }
        (weight, _) => {
            for (lane, &ti) in t.iter().enumerate() {
                if ti == ignore {
                    continue;
                }
                let scale = match grad_output {
                    GradOutput::PerRow(g) => g[first + lane] as f64,
                    GradOutput::Scalar(_) => batch_scale,
                };
                let w_t = weight.map_or(1.0, |w| w[ti as usize]);
                args.target[lane] = ti as i32;
                args.alpha[lane] = (scale * w_t as f64) as f32;
                args.weight[lane] = w_t;
                args.keep[lane] = -1;
            }
        }
    }
    args
}

/// What a row's loss needs besides `log S`, `m` and the accumulated `sum c_j (x_j - m)`.
#[derive(Clone, Copy, Debug)]
enum RowKind {
    /// `ignore_index`: no loss, `0 * softmax` as the gradient.
    Ignored,
    /// `nll = w_t * (log S - (x_t - m))`.
    Index { w_t: f32, x_t: f32 },
    /// `loss = log S * total - sum c_j (x_j - m)`, `total = sum_j w_j p'_j`.
    Probabilities { total: f32 },
}

/// A row's target turned into the gradient's terms: `dx_j = exp(x_j - m) / S * alpha -
/// beta * c_j`, then `fix = (t, amount)` subtracted at the target index.
struct RowTarget<'a> {
    coef: Coef<'a>,
    alpha: f64,
    beta: f64,
    fix: Option<(usize, f32)>,
    kind: RowKind,
}

impl<'a> RowTarget<'a> {
    fn new(
        targets: Targets<'a>,
        n: usize,
        x: &[f32],
        range: &core::ops::Range<usize>,
        options: &CrossEntropyOptions<'a>,
        plan: &Plan,
        scale: f64,
    ) -> Self {
        let e = plan.smoothing;
        let keep = 1.0 - e;
        let e_over_c = e / x.len() as f64;
        let weight = options.weight;
        match targets {
            Targets::Indices(t) if t[n] == options.ignore_index => RowTarget {
                coef: Coef::None,
                alpha: 0.0,
                beta: 0.0,
                fix: None,
                kind: RowKind::Ignored,
            },
            Targets::Indices(t) => {
                let t = t[n] as usize;
                let w_t = weight.map_or(1.0, |w| w[t] as f64);
                let coef = match (e > 0.0, weight) {
                    (false, _) => Coef::None,
                    (true, None) => Coef::Ones,
                    (true, Some(w)) => Coef::Weights(w),
                };
                RowTarget {
                    coef,
                    alpha: scale * (keep * w_t + e_over_c * plan.weight_sum),
                    beta: scale * e_over_c,
                    fix: Some((t, (scale * keep * w_t) as f32)),
                    kind: RowKind::Index {
                        w_t: w_t as f32,
                        x_t: x[t],
                    },
                }
            }
            Targets::Probabilities(p) => {
                let p = &p[range.clone()];
                let (keep32, add32) = (keep as f32, e_over_c as f32);
                let total: f64 = match weight {
                    None => p.iter().map(|&v| v.mul_add(keep32, add32) as f64).sum(),
                    Some(w) => p
                        .iter()
                        .zip(w)
                        .map(|(&v, &w)| (w * v.mul_add(keep32, add32)) as f64)
                        .sum(),
                };
                RowTarget {
                    coef: Coef::Probs {
                        p,
                        w: weight,
                        keep: keep32,
                        add: add32,
                    },
                    alpha: scale * total,
                    beta: scale,
                    fix: None,
                    kind: RowKind::Probabilities {
                        total: total as f32,
                    },
                }
            }
        }
    }
}
