//! `simdnet explain`: the tutorial's worked example, step by step, every number computed by the
//! library's kernels — what `criterion(output, target)` computes, what `loss.backward()` gives
//! the logits, and what `optimizer.step()` does with momentum, next to the textbook form.

use std::io::Write;

use crate::loss::CrossEntropyLoss;
use crate::optim::{Sgd, SgdOptions};
use simdnet_kernels::Kernels;

/// The example's logits and target (one sample, three classes).
pub const LOGITS: [f32; 3] = [2.0, 1.0, 0.1];
pub const TARGET: i64 = 0;
/// The SGD settings of the example.
pub const LR: f64 = 0.1;
pub const MOMENTUM: f64 = 0.9;

fn fmt(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
    format!("[{}]", items.join(", "))
}

/// `softmax(x)` with the library's vectorised exp: `exp(x - max) / sum`.
fn softmax(kernels: &Kernels, x: &[f32]) -> Vec<f32> {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let shifted: Vec<f32> = x.iter().map(|v| v - max).collect();
    let mut e = vec![0.0; x.len()];
    kernels.exp(&shifted, &mut e);
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Prints the worked example to `out`.
pub fn explain(kernels: &Kernels, out: &mut dyn Write) -> std::io::Result<()> {
    let criterion = CrossEntropyLoss::<f32>::default();
    let classes = LOGITS.len();
    let targets = [TARGET];
    let failed = |e: crate::Error| std::io::Error::other(e.to_string());

    writeln!(
        out,
        "The tutorial's worked example, computed by simdnet's kernels ({}).",
        kernels.isa()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "criterion = nn.CrossEntropyLoss(); loss = criterion(logits, target)"
    )?;
    writeln!(
        out,
        "  logits x                                  = {}",
        fmt(&LOGITS)
    )?;
    writeln!(
        out,
        "  target                                    = {TARGET}"
    )?;
    let p = softmax(kernels, &LOGITS);
    writeln!(
        out,
        "  softmax p_i = exp(x_i) / sum_j exp(x_j)   = {}",
        fmt(&p)
    )?;
    let mut grad = [0.0f32; 3];
    let loss = criterion
        .forward_backward(kernels, &LOGITS, classes, &targets, &mut grad)
        .map_err(failed)?;
    writeln!(
        out,
        "  loss = -ln p_target = logsumexp(x) - x_target = {loss:.6}"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "loss.backward(): the gradient with respect to the logits"
    )?;
    let onehot: Vec<f32> = (0..classes)
        .map(|i| if i as i64 == TARGET { 1.0 } else { 0.0 })
        .collect();
    writeln!(
        out,
        "  onehot(target)                            = {}",
        fmt(&onehot)
    )?;
    writeln!(
        out,
        "  d loss / d x = softmax - onehot           = {}",
        fmt(&grad)
    )?;
    writeln!(out)?;

    writeln!(
        out,
        "optimizer = torch.optim.SGD([x], lr={LR}, momentum={MOMENTUM}); optimizer.step(), twice,"
    )?;
    writeln!(
        out,
        "treating the three logits as the parameters (each step recomputes the gradient):"
    )?;
    let options = SgdOptions {
        momentum: MOMENTUM,
        ..SgdOptions::new(LR)
    };
    let mut sgd = Sgd::<f32>::new(&[classes], options).map_err(failed)?;
    let mut params = LOGITS;
    // The textbook form, in the same precision: v = momentum * v + lr * g; p -= v.
    let mut textbook_p = LOGITS;
    let mut v = [0.0f32; 3];
    for step in 1..=2 {
        let mut g = [0.0f32; 3];
        let loss = criterion
            .forward_backward(kernels, &params, classes, &targets, &mut g)
            .map_err(failed)?;
        writeln!(
            out,
            "  step {step}: p = {}, loss = {loss:.6}, g = {}",
            fmt(&params),
            fmt(&g)
        )?;
        sgd.step(kernels, &mut params, &g).map_err(failed)?;
        let buf = sgd.momentum_buffer(0).expect("momentum creates a buffer");
        if step == 1 {
            formula(
                out,
                "PyTorch: no buffer yet, so buf = g (a copy, no dampening)",
                buf,
            )?;
        } else {
            let label = format!("PyTorch: buf = {MOMENTUM} * buf + (1 - dampening) * g");
            formula(out, &label, buf)?;
        }
        formula(out, "         p = p - lr * buf", &params)?;
        for i in 0..classes {
            v[i] = MOMENTUM as f32 * v[i] + LR as f32 * g[i];
            textbook_p[i] -= v[i];
        }
        let label = if step == 1 {
            format!("textbook: v = {MOMENTUM} * v + lr * g (v starts at 0)")
        } else {
            format!("textbook: v = {MOMENTUM} * v + lr * g")
        };
        formula(out, &label, &v)?;
        formula(out, "          p = p - v", &textbook_p)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "The two forms agree while lr is constant (v = lr * buf); they part when lr changes, because"
    )?;
    writeln!(
        out,
        "PyTorch's buffer holds raw gradients and the textbook's v holds lr-scaled steps."
    )?;
    Ok(())
}

/// One formula line of the SGD steps: the formula, then ` = values` in a column of its own.
fn formula(out: &mut dyn Write, label: &str, values: &[f32]) -> std::io::Result<()> {
    writeln!(out, "    {label:<58} = {}", fmt(values))
}
