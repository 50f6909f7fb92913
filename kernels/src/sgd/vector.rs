//! The SGD step written once over [`F32x`]: one pass over parameter, gradient and buffer, the
//! operations of the module docs in PyTorch's order, so every ISA gives the reference's bits.
//! The switches are const generics, so each combination is its own branch-free loop.

use super::Coefficients;
use crate::simd::F32x;

/// All lanes at `ptr`, or the first `count`. (Functions, not closures: closures do not inherit
/// the wrapper's target features.)
///
/// # Safety
/// The CPU supports `V`'s ISA; the lanes read are inside the buffer.
#[inline(always)]
unsafe fn load<V: F32x>(ptr: *const f32, count: Option<usize>) -> V {
    // SAFETY: forwarded contract.
    unsafe {
        match count {
            None => V::load(ptr),
            Some(n) => V::load_first(ptr, n),
        }
    }
}

/// Stores all lanes at `ptr`, or the first `count`.
///
/// # Safety
/// The CPU supports `V`'s ISA; the lanes written are inside the buffer.
#[inline(always)]
unsafe fn store<V: F32x>(ptr: *mut f32, count: Option<usize>, v: V) {
    // SAFETY: forwarded contract.
    unsafe {
        match count {
            None => v.store(ptr),
            Some(n) => v.store_first(ptr, n),
        }
    }
}

/// One vector of the step at `i`; `count`: only that many lanes are read and written.
///
/// # Safety
/// The CPU supports `V`'s ISA; `p`, `g` (and `b` when `MOM`) valid for the lanes touched.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn lanes<V: F32x, const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    sign: V,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    i: usize,
    count: Option<usize>,
) {
    // SAFETY: the caller guarantees the lanes touched are inside the three buffers; the
    // first-`n` forms touch no other lane.
    unsafe {
        let pv: V = load(p.add(i), count);
        // maximize: flip the sign bit (exactly PyTorch's negation).
        let mut gv = load::<V>(g.add(i), count).xor(sign);
        if WD {
            gv = pv.mul_add(V::splat(c.weight_decay), gv);
        }
        if MOM {
            let mom = V::splat(c.momentum);
            let bv = if FIRST {
                gv
            } else {
                let decayed = load::<V>(b.add(i), count).mul(mom);
                gv.mul_add(V::splat(c.one_minus_dampening), decayed)
            };
            store(b.add(i), count, bv);
            gv = if NEST { bv.mul_add(mom, gv) } else { bv };
        }
        store(p.add(i), count, gv.mul_add(V::splat(c.neg_lr), pv));
    }
}

/// # Safety
/// The CPU supports `V`'s ISA; `g` and `b` (when `MOM`) hold `n` floats like `p`.
#[inline(always)]
unsafe fn run<V: F32x, const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    n: usize,
) {
    let step_at = lanes::<V, WD, MOM, FIRST, NEST>;
    let w = V::LANES;
    // SAFETY: the head covers [0, head) with head <= n; full vectors cover [i, i + w) with
    // i + w <= n; the tail covers [i, n).
    unsafe {
        let sign = V::splat(if c.maximize { -0.0 } else { 0.0 });
        // Peel the lanes before `p`'s first vector-size boundary, so the main loop never
        // splits a cache line when `g` and `b` share `p`'s offset (as `simdnet::optim::Sgd`
        // arranges, and as same-sized heap buffers do). `p` is 4-byte aligned (an f32 slice).
        let bytes = 4 * w;
        let head = ((bytes - p as usize % bytes) % bytes / 4).min(n);
        if head > 0 {
            step_at(c, sign, p, g, b, 0, Some(head));
        }
        let mut i = head;
        while i + 2 * w <= n {
            step_at(c, sign, p, g, b, i, None);
            step_at(c, sign, p, g, b, i + w, None);
            i += 2 * w;
        }
        while i + w <= n {
            step_at(c, sign, p, g, b, i, None);
            i += w;
        }
        if i < n {
            step_at(c, sign, p, g, b, i, Some(n - i));
        }
    }
}

/// One step over `param` (module docs), on vectors `V`.
///
/// # Safety
/// The CPU supports `V`'s ISA; `grad` and `buffer` as long as `param`; a buffer exactly when
/// `c.use_momentum`.
#[inline(always)]
pub(super) unsafe fn step<V: F32x>(
    c: &Coefficients,
    param: &mut [f32],
    grad: &[f32],
    buffer: Option<&mut [f32]>,
    first: bool,
) {
    let n = param.len();
    let p = param.as_mut_ptr();
    let g = grad.as_ptr();
    let b = buffer.map_or(core::ptr::null_mut(), |b| b.as_mut_ptr());
    // SAFETY: every pointer covers n floats (the caller's contract), and `b` is only used when
    // momentum is on, when it is non-null.
    unsafe {
        match (c.use_weight_decay, c.use_momentum, first, c.nesterov) {
            (false, false, _, _) => run::<V, false, false, false, false>(c, p, g, b, n),
            (true, false, _, _) => run::<V, true, false, false, false>(c, p, g, b, n),
            (false, true, false, false) => run::<V, false, true, false, false>(c, p, g, b, n),
            (false, true, false, true) => run::<V, false, true, false, true>(c, p, g, b, n),
            (false, true, true, false) => run::<V, false, true, true, false>(c, p, g, b, n),
            (false, true, true, true) => run::<V, false, true, true, true>(c, p, g, b, n),
            (true, true, false, false) => run::<V, true, true, false, false>(c, p, g, b, n),
            (true, true, false, true) => run::<V, true, true, false, true>(c, p, g, b, n),
            (true, true, true, false) => run::<V, true, true, true, false>(c, p, g, b, n),
            (true, true, true, true) => run::<V, true, true, true, true>(c, p, g, b, n),
        }
    }
}
