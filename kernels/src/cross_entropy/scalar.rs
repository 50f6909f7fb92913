//! The reference: PyTorch's formulas written out plainly, generic over `f32` and `f64` (the
//! oracle of the SIMD kernels and of the gradient checks), and the scalar table's row kernels.

use super::{
    plan, BlockArgs, Coef, CrossEntropyError, CrossEntropyOptions, GradOutput, Reduction, RowArgs,
    RowStats, Targets, BLOCK_ROWS,
};
use crate::exp::scalar::exp_one;
use crate::Real;

/// The reference cross-entropy: loss (reduced; the sum of the row losses under
/// [`Reduction::None`]), the gradient with respect to the logits into `grad_logits` when given
/// (overwritten), and the per-row losses into `row_losses` when given. Same arguments, checks,
/// errors and panics as [`Kernels::cross_entropy_forward_backward`](crate::Kernels::cross_entropy_forward_backward).
///
/// It computes `logp = (x - max) - log(sum exp(x - max))` per row, as PyTorch's `log_softmax`
/// does, and then the formulas of the [module docs](super) term by term.
///
/// # Errors
/// PyTorch's errors (see [`CrossEntropyError`]).
///
/// # Panics
/// On inconsistent lengths, as the [`Kernels`](crate::Kernels) methods.
#[allow(clippy::too_many_arguments)]
pub fn forward_backward<T: Real>(
    logits: &[T],
    classes: usize,
    targets: Targets<'_, T>,
    options: &CrossEntropyOptions<'_, T>,
    grad_output: GradOutput<'_, T>,
    mut grad_logits: Option<&mut [T]>,
    mut row_losses: Option<&mut [T]>,
) -> Result<T, CrossEntropyError> {
    if let Some(g) = grad_logits.as_ref() {
        crate::check_len("cross_entropy: grad_logits", logits.len(), g.len());
    }
    let plan = plan(
        logits.len(),
        classes,
        &targets,
        options,
        Some(&grad_output),
        row_losses.as_ref().map(|r| r.len()),
    )?;
    let c = classes;
    let e = T::from_f64(plan.smoothing);
    let smoothing = plan.smoothing > 0.0;
    let c_t = T::from_usize(c);
    let weight = |j: usize| options.weight.map_or(T::ONE, |w| w[j]);
    let divisor = T::from_f64(plan.divisor);
    let (mut sum_nll, mut sum_smooth) = (T::ZERO, T::ZERO);
    let mut logp = vec![T::ZERO; c];
    for n in 0..plan.rows {
        let x = &logits[n * c..(n + 1) * c];
        let mut m = T::NEG_INFINITY;
        for &v in x {
            if v > m {
                m = v;
            }
        }
        let sum: T = x.iter().map(|&v| (v - m).exp()).sum();
        let log_sum = sum.ln();
        for (lp, &v) in logp.iter_mut().zip(x) {
            *lp = (v - m) - log_sum;
        }
        let scale = match (grad_output, options.reduction) {
            (GradOutput::PerRow(g), _) => g[n],
            (GradOutput::Scalar(g), Reduction::Mean) => g / divisor,
            (GradOutput::Scalar(g), _) => g,
        };
        // a_j: the row's weighted target distribution (None for an ignored row).
        let target_dist: Option<Vec<T>> = match targets {
            Targets::Indices(t) => {
                if t[n] == options.ignore_index {
                    None
                } else {
                    let t = t[n] as usize;
                    let nll = -(weight(t) * logp[t]);
                    sum_nll += nll;
                    let mut row_loss = nll;
                    if smoothing {
                        let mut smooth = T::ZERO;
                        for (j, &lp) in logp.iter().enumerate() {
                            smooth -= lp * weight(j);
                        }
                        sum_smooth += smooth;
                        row_loss = (T::ONE - e) * nll + e / c_t * smooth;
                    }
                    if let Some(r) = row_losses.as_deref_mut() {
                        r[n] = row_loss;
                    }
                    Some(
                        (0..c)
                            .map(|j| {
                                let hit = if j == t {
                                    (T::ONE - e) * weight(t)
                                } else {
                                    T::ZERO
                                };
                                hit + e / c_t * weight(j)
                            })
                            .collect(),
                    )
                }
            }
            Targets::Probabilities(p) => {
                let p = &p[n * c..(n + 1) * c];
                let a: Vec<T> = (0..c)
                    .map(|j| {
                        let pj = if smoothing {
                            p[j] * (T::ONE - e) + e / c_t
                        } else {
                            p[j]
                        };
                        weight(j) * pj
                    })
                    .collect();
                let mut loss = T::ZERO;
                for (&lp, &aj) in logp.iter().zip(&a) {
                    loss -= lp * aj;
                }
                sum_nll += loss;
                if let Some(r) = row_losses.as_deref_mut() {
                    r[n] = loss;
                }
                Some(a)
            }
        };
        if target_dist.is_none() {
            if let Some(r) = row_losses.as_deref_mut() {
                r[n] = T::ZERO;
            }
        }
        if let Some(g) = grad_logits.as_deref_mut() {
            let g = &mut g[n * c..(n + 1) * c];
            match &target_dist {
                // PyTorch's log_softmax backward of a zero gradient: 0 * softmax.
                None => {
                    for (g, &lp) in g.iter_mut().zip(&logp) {
                        *g = lp.exp() * T::ZERO;
                    }
                }
                Some(a) => {
                    let total: T = a.iter().copied().sum();
                    for ((g, &lp), &aj) in g.iter_mut().zip(&logp).zip(a) {
                        *g = scale * (lp.exp() * total - aj);
                    }
                }
            }
        }
    }
    let total = match targets {
        Targets::Indices(_) if smoothing => match options.reduction {
            Reduction::Mean => {
                (T::ONE - e) * (sum_nll / divisor) + (sum_smooth / divisor) * (e / c_t)
            }
            _ => (T::ONE - e) * sum_nll + sum_smooth * (e / c_t),
        },
        _ => match options.reduction {
            Reduction::Mean => sum_nll / divisor,
            _ => sum_nll,
        },
    };
    Ok(total)
}

/// The coefficient `c_j` of a row (None: no per-class term).
#[inline]
fn coef_at(coef: &Coef<'_>, j: usize) -> Option<f32> {
    match *coef {
        Coef::None => None,
        Coef::Ones => Some(1.0),
        Coef::Weights(w) => Some(w[j]),
        Coef::Probs { p, w, keep, add } => Some(w.map_or(1.0, |w| w[j]) * p[j].mul_add(keep, add)),
    }
}

/// The scalar table's row kernel: the plain three passes of the module docs (maximum,
/// exp-and-sum, scale), element by element.
/// `get` reads the logits; `grad` (`None`: forward only) reads and writes the gradient buffer,
/// which may be the logits themselves.
pub(crate) fn row<G: Fn(usize) -> f32, S: FnMut(usize, f32)>(
    n: usize,
    get: impl Fn(usize) -> f32,
    mut grad: Option<(G, S)>,
    args: &RowArgs<'_>,
) -> RowStats {
    let max = (0..n)
        .map(&get)
        .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let m = if max == f32::NEG_INFINITY { 0.0 } else { max };
    let (mut sum, mut acc) = (0.0f32, 0.0f32);
    for j in 0..n {
        let d = get(j) - m;
        let e = exp_one(d);
        if let Some((_, set)) = grad.as_mut() {
            set(j, e);
        }
        sum += e;
        if let Some(c) = coef_at(&args.coef, j) {
            acc += c * d;
        }
    }
    if max == f32::NEG_INFINITY {
        sum = f32::NAN;
    }
    if let Some((read, set)) = grad.as_mut() {
        let mul = args.alpha / sum;
        for j in 0..n {
            let mut g = read(j) * mul;
            if let Some(c) = coef_at(&args.coef, j) {
                g -= args.beta * c;
            }
            set(j, g);
        }
        if let Some((t, amount)) = args.fix {
            set(t, read(t) - amount);
        }
    }
    RowStats { m, sum, acc }
}

/// The scalar table's block kernel: `BLOCK_ROWS` rows of `classes` logits (`get(i)` reads element `i`
/// of the block), the gradient handed to `set` when given; returns the rows' losses.
pub(crate) fn block<S: FnMut(usize, f32)>(
    classes: usize,
    get: impl Fn(usize) -> f32,
    mut set: Option<S>,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let mut losses = [0.0f32; BLOCK_ROWS];
    let mut e = [0.0f32; super::BLOCK_MAX_CLASSES];
    for (r, loss) in losses.iter_mut().enumerate() {
        let row = |j: usize| get(r * classes + j);
        let max = (0..classes)
            .map(row)
            .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let m = if max == f32::NEG_INFINITY { 0.0 } else { max };
        let mut sum = 0.0f32;
        for (j, e) in e[..classes].iter_mut().enumerate() {
            *e = exp_one(row(j) - m);
            sum += *e;
        }
        if max == f32::NEG_INFINITY {
            sum = f32::NAN;
        }
        let t = args.target[r] as usize;
        if args.keep[r] != 0 {
            *loss = args.weight[r] * (sum.ln() - (row(t) - m));
        }
        if let Some(set) = set.as_mut() {
            let mul = args.alpha[r] / sum;
            for (j, &e) in e[..classes].iter().enumerate() {
                let fix = if j == t { args.alpha[r] } else { 0.0 };
                set(r * classes + j, e * mul - fix);
            }
        }
    }
    losses
}
