//! `simdnet explain` prints the tutorial's worked example; this checks every number it prints
//! against an independent f64 computation (and the tutorial's rounded values).

use simdnet::explain::{explain, LOGITS, LR, MOMENTUM, TARGET};
use simdnet::kernels::Kernels;

fn output(kernels: &Kernels) -> String {
    let mut out = Vec::new();
    explain(kernels, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Every `[a, b, c]` group in `line`, parsed.
fn vectors(line: &str) -> Vec<Vec<f64>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('[') {
        let end = start + rest[start..].find(']').expect("closing bracket");
        found.push(
            rest[start + 1..end]
                .split(", ")
                .map(|v| v.trim().parse().unwrap())
                .collect(),
        );
        rest = &rest[end + 1..];
    }
    found
}

/// The first line containing `marker`.
fn line<'a>(out: &'a str, marker: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in\n{out}"))
}

/// The number after the last `=` of a line.
fn scalar_after(line: &str, key: &str) -> f64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} not in {line:?}"))
        + key.len();
    let tail = &line[at..];
    let tail = tail.trim_start_matches([' ', '=']);
    let end = tail
        .find(|c: char| c == ',' || c.is_whitespace())
        .unwrap_or(tail.len());
    tail[..end].parse().unwrap()
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn grad(x: &[f64]) -> Vec<f64> {
    let mut g = softmax(x);
    g[TARGET as usize] -= 1.0;
    g
}

fn loss(x: &[f64]) -> f64 {
    -softmax(x)[TARGET as usize].ln()
}

fn assert_near(what: &str, printed: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(printed.len(), expected.len(), "{what}");
    for (p, e) in printed.iter().zip(expected) {
        assert!(
            (p - e).abs() <= tol,
            "{what}: printed {printed:?}, expected {expected:?}"
        );
    }
}

#[test]
fn the_worked_example_gives_the_tutorials_numbers_on_every_isa() {
    let x: Vec<f64> = LOGITS.iter().map(|&v| f64::from(v)).collect();
    for kernels in Kernels::all() {
        let out = output(&kernels);
        let p = &vectors(line(&out, "softmax p_i"))[0];
        // The tutorial's rounded values...
        assert_near("softmax (tutorial)", p, &[0.659, 0.242, 0.099], 5e-4);
        // ...and the exact ones, to the printed precision (f32 arithmetic: 1e-6 slack).
        assert_near("softmax", p, &softmax(&x), 2e-6);
        let l = scalar_after(line(&out, "loss = -ln p_target"), "x_target");
        assert!(
            (l - 0.417).abs() < 5e-4 && (l - loss(&x)).abs() < 2e-6,
            "loss {l}"
        );
        let g = &vectors(line(&out, "softmax - onehot"))[0];
        assert_near("gradient", g, &grad(&x), 2e-6);
    }
}

#[test]
fn the_two_sgd_steps_show_pytorchs_buffer_and_the_textbook_form() {
    let out = output(Kernels::get());
    let step_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("step "))
        .collect();
    let pytorch_p: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("p = p - lr * buf"))
        .collect();
    let textbook_v: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("textbook: v ="))
        .collect();
    let textbook_p: Vec<&str> = out.lines().filter(|l| l.contains("p = p - v")).collect();
    let bufs: Vec<&str> = out.lines().filter(|l| l.contains("PyTorch: ")).collect();
    assert_eq!(
        (
            step_lines.len(),
            pytorch_p.len(),
            textbook_v.len(),
            textbook_p.len(),
            bufs.len()
        ),
        (2, 2, 2, 2, 2),
        "{out}"
    );
    assert!(
        bufs[0].contains("buf = g"),
        "first step copies the gradient: {}",
        bufs[0]
    );

    // Independent f64 trajectory: PyTorch's form and the textbook's.
    let mut p: Vec<f64> = LOGITS.iter().map(|&v| f64::from(v)).collect();
    let mut buf = vec![0.0; 3];
    let mut v = vec![0.0; 3];
    for step in 0..2 {
        let vs = vectors(step_lines[step]);
        assert_near("parameters before the step", &vs[0], &p, 2e-6);
        let g = grad(&p);
        assert_near("gradient", &vs[1], &g, 2e-6);
        assert!((scalar_after(step_lines[step], "loss") - loss(&p)).abs() < 2e-6);
        for i in 0..3 {
            buf[i] = if step == 0 {
                g[i]
            } else {
                MOMENTUM * buf[i] + g[i]
            };
            v[i] = MOMENTUM * v[i] + LR * g[i];
        }
        assert_near("momentum buffer", &vectors(bufs[step])[0], &buf, 2e-6);
        for i in 0..3 {
            p[i] -= LR * buf[i];
        }
        assert_near("PyTorch's update", &vectors(pytorch_p[step])[0], &p, 2e-6);
        assert_near("textbook velocity", &vectors(textbook_v[step])[0], &v, 2e-6);
        // Same trajectory while lr is constant.
        assert_near("textbook update", &vectors(textbook_p[step])[0], &p, 2e-6);
    }
    // The loss went down.
    assert!(loss(&p) < loss(&LOGITS.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()));
}
