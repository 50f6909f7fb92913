//! `Linear::forward_relu` (the layer's GEMM with bias and ReLU as its store epilogue) against
//! the unfused pair, `Linear::forward` then `ReLU::forward_in_place`: the same bits on every
//! kernel table and on the f64 reference backend, for LeNet-5's fully connected shapes at
//! several batch sizes (the dot-product path at small batches, the blocked GEMM at 64).
//! `Linear::forward` itself is the GEMM followed by the bias kernel, as before.

use simdnet::backend::{Backend, Reference};
use simdnet::kernels::gemm::Transpose;
use simdnet::kernels::{Kernels, Real};
use simdnet::layers::{Linear, ReLU};
use simdnet::rng::Rng;

const SHAPES: [(usize, usize); 3] = [(400, 120), (120, 84), (84, 10)];
const BATCHES: [usize; 4] = [1, 3, 17, 64];

fn values<T: Real>(rng: &mut Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.uniform(-1.0, 1.0)))
        .collect()
}

/// Fused and unfused forward of `fc` on `backend`, compared by bits (`to_bits` through f64
/// keeps every f32 and f64 bit pattern apart).
fn check<T: Real, B: Backend<T>>(backend: &B, name: &str) {
    let relu = ReLU::new("relu");
    let mut rng = Rng::new(11);
    for (inputs, outputs) in SHAPES {
        let fc = Linear::new("fc", inputs, outputs);
        for batch in BATCHES {
            let x = values::<T>(&mut rng, batch * inputs);
            let w = values::<T>(&mut rng, fc.weight_len());
            let b = values::<T>(&mut rng, fc.bias_len());

            let mut want = vec![T::ZERO; batch * outputs];
            fc.forward(backend, batch, &x, &w, &b, &mut want).unwrap();
            // `forward` is the plain GEMM then the bias kernel.
            let mut plain = vec![T::ZERO; batch * outputs];
            backend.gemm(
                Transpose::No,
                Transpose::Yes,
                batch,
                outputs,
                inputs,
                T::ONE,
                &x,
                inputs,
                &w,
                inputs,
                T::ZERO,
                &mut plain,
                outputs,
            );
            backend.bias_add(&mut plain, &b, batch, 1);
            let bits = |v: &[T]| -> Vec<u64> { v.iter().map(|x| x.to_f64().to_bits()).collect() };
            assert_eq!(
                bits(&want),
                bits(&plain),
                "{name} forward {inputs}->{outputs} batch {batch}"
            );
            relu.forward_in_place(backend, &mut want);
            assert!(want.contains(&T::ZERO) && want.iter().any(|&v| v > T::ZERO));

            let mut got = vec![T::ZERO; batch * outputs];
            fc.forward_relu(backend, batch, &x, &w, &b, &mut got)
                .unwrap();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{name} forward_relu {inputs}->{outputs} batch {batch}"
            );
        }
    }
}

#[test]
fn fused_forward_is_bit_identical_on_every_table() {
    for kernels in Kernels::all() {
        check::<f32, _>(&kernels, &kernels.isa().to_string());
    }
}

#[test]
fn fused_forward_is_bit_identical_on_the_reference() {
    check::<f64, _>(&Reference, "reference f64");
    check::<f32, _>(&Reference, "reference f32");
}

#[test]
fn fused_forward_checks_lengths_like_forward() {
    let fc = Linear::new("fc1", 4, 3);
    let (x, w, b) = (vec![0.5f32; 8], vec![0.25f32; 12], vec![1.0f32; 2]);
    let mut y = vec![0.0f32; 6];
    let err = fc
        .forward_relu(Kernels::get(), 2, &x, &w, &b, &mut y)
        .unwrap_err()
        .to_string();
    let want = fc
        .forward(Kernels::get(), 2, &x, &w, &b, &mut y)
        .unwrap_err()
        .to_string();
    assert_eq!(err, want);
    assert!(err.contains("fc1") && err.contains("bias"), "{err}");
}
