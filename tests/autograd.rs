//! Tape behaviour: weight reuse accumulates exactly, no_grad records nothing, the tape is freed
//! after backward, the gradient checker itself catches a wrong gradient, and a small MLP learns.

use autograd::{gradcheck, ParamStore, Tape, Var};
use engine::{DType, Rng, Tensor};

fn rand(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Rng::new(seed).uniform_tensor(shape, -1.0, 1.0, dtype).unwrap()
}

/// ALBERT's defining trait: one weight applied at every layer. The gradient must equal the sum of
/// the gradients of the unrolled model with separate copies, and accumulate in one buffer.
#[test]
fn shared_weight_gradient_equals_sum_over_unrolled_copies() {
    const LAYERS: usize = 4;
    let x = rand(1, &[3, 5], DType::F64);
    let w = rand(2, &[5, 5], DType::F64).to_vec_f64().iter().map(|v| v * 0.5).collect::<Vec<_>>();
    let w = Tensor::from_vec(w, &[5, 5]).unwrap();
    let b = rand(3, &[5], DType::F64);

    // shared: one parameter used LAYERS times
    let mut shared = ParamStore::new();
    let (pw, pb) = (shared.add("w", w.clone()).unwrap(), shared.add("b", b.clone()).unwrap());
    let tape = Tape::new();
    let (wv, bv) = (tape.param(&shared, pw), tape.param(&shared, pb));
    let mut h = tape.constant(x.clone());
    for _ in 0..LAYERS {
        h = h.linear(&wv, Some(&bv)).unwrap().tanh().unwrap();
    }
    let loss = h.sum_all().unwrap();
    tape.backward(&loss, &mut shared).unwrap();

    // unrolled: a separate copy per layer
    let mut unrolled = ParamStore::new();
    let ids: Vec<_> = (0..LAYERS)
        .map(|l| {
            (unrolled.add(&format!("w{l}"), w.clone()).unwrap(), unrolled.add(&format!("b{l}"), b.clone()).unwrap())
        })
        .collect();
    let tape = Tape::new();
    let mut h = tape.constant(x);
    for &(iw, ib) in &ids {
        h = h.linear(&tape.param(&unrolled, iw), Some(&tape.param(&unrolled, ib))).unwrap().tanh().unwrap();
    }
    let loss2 = h.sum_all().unwrap();
    tape.backward(&loss2, &mut unrolled).unwrap();
    assert_eq!(loss.value().item().unwrap(), loss2.value().item().unwrap());

    let mut sum_w = vec![0.0; 25];
    let mut sum_b = vec![0.0; 5];
    for &(iw, ib) in &ids {
        sum_w.iter_mut().zip(unrolled.grad(iw).unwrap().to_vec_f64()).for_each(|(s, g)| *s += g);
        sum_b.iter_mut().zip(unrolled.grad(ib).unwrap().to_vec_f64()).for_each(|(s, g)| *s += g);
    }
    let (gw, gb) = (shared.grad(pw).unwrap().to_vec_f64(), shared.grad(pb).unwrap().to_vec_f64());
    for (a, b) in gw.iter().zip(&sum_w).chain(gb.iter().zip(&sum_b)) {
        assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()), "shared {a} vs unrolled sum {b}");
    }

    // a second backward without zero_grad accumulates (+=): the gradient doubles
    let tape = Tape::new();
    let (wv, bv) = (tape.param(&shared, pw), tape.param(&shared, pb));
    let mut h = tape.constant(rand(1, &[3, 5], DType::F64));
    for _ in 0..LAYERS {
        h = h.linear(&wv, Some(&bv)).unwrap().tanh().unwrap();
    }
    tape.backward(&h.sum_all().unwrap(), &mut shared).unwrap();
    for (a, b) in shared.grad(pw).unwrap().to_vec_f64().iter().zip(&gw) {
        assert!((a - 2.0 * b).abs() <= 1e-13 * (1.0 + b.abs()));
    }
}

#[test]
fn no_grad_records_nothing_and_backward_frees_the_tape() {
    let mut store = ParamStore::new();
    let w = store.add("w", rand(1, &[4, 4], DType::F32)).unwrap();
    let x = rand(2, &[2, 4], DType::F32);

    let tape = Tape::no_grad();
    for _ in 0..100 {
        let y = tape.constant(x.clone()).linear(&tape.param(&store, w), None).unwrap().gelu_tanh().unwrap();
        assert!(y.id().is_none());
    }
    assert_eq!(tape.len(), 0);

    let tape = Tape::new();
    for step in 0..50 {
        let y = tape.constant(x.clone()).linear(&tape.param(&store, w), None).unwrap().gelu_tanh().unwrap();
        let loss = y.sum_all().unwrap();
        assert!(tape.len() <= 6, "step {step}: {} nodes", tape.len());
        tape.backward(&loss, &mut store).unwrap();
        assert_eq!(tape.len(), 0, "backward must empty the tape");
    }
    let err = tape.backward(&tape.constant(Tensor::scalar(1.0f32)), &mut store).unwrap_err();
    assert!(err.to_string().contains("does not depend"), "{err}");
}

/// The checker must be able to fail: here the function hides a dependency on x from the tape
/// (x * stop_gradient(x)), so the tape's gradient is x while the true one is 2x.
#[test]
fn gradcheck_catches_a_wrong_gradient() {
    let x = rand(1, &[4], DType::F64);
    let r = gradcheck(
        |t, v: &[Var]| {
            let c = t.constant(v[0].value().clone());
            v[0].mul(&c)?.sum_all()
        },
        &[x],
        1e-6,
        1e-7,
        1e-6,
    );
    let e = r.unwrap_err().to_string();
    assert!(e.contains("analytic") && e.contains("numeric"), "{e}");
}

/// A 2-layer MLP trained with plain SGD on a synthetic classification task (3 classes defined by
/// a fixed random linear teacher) reaches near-zero loss.
#[test]
fn mlp_learns_a_synthetic_task_with_sgd() {
    let (n, d, hidden, classes) = (64, 8, 32, 3);
    let mut rng = Rng::new(7);
    let x = rng.normal_tensor(&[n, d], 0.0, 1.0, DType::F32).unwrap();
    let teacher = rng.normal_tensor(&[classes, d], 0.0, 1.0, DType::F32).unwrap();
    let scores = engine::ops::matmul(&x, &teacher, false, true, None).unwrap().to_vec_f32();
    let labels: Vec<i64> =
        scores.chunks(classes).map(|r| (0..classes).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as i64).collect();
    let y = Tensor::from_i64(labels, &[n]).unwrap();

    let mut store = ParamStore::new();
    let w1 = store.add("w1", rng.normal_tensor(&[hidden, d], 0.0, 0.3, DType::F32).unwrap()).unwrap();
    let b1 = store.add("b1", Tensor::zeros(&[hidden], DType::F32)).unwrap();
    let w2 = store.add("w2", rng.normal_tensor(&[classes, hidden], 0.0, 0.3, DType::F32).unwrap()).unwrap();
    let b2 = store.add("b2", Tensor::zeros(&[classes], DType::F32)).unwrap();

    let mut first = None;
    let mut last = f64::MAX;
    for _step in 0..1500 {
        let tape = Tape::new();
        let p = |id| tape.param(&store, id);
        let h = tape.constant(x.clone()).linear(&p(w1), Some(&p(b1))).unwrap().gelu_erf().unwrap();
        let loss = h.linear(&p(w2), Some(&p(b2))).unwrap().cross_entropy(&y, -100).unwrap();
        last = loss.value().item().unwrap();
        first.get_or_insert(last);
        store.zero_grad();
        tape.backward(&loss, &mut store).unwrap();
        for id in [w1, b1, w2, b2] {
            let step = engine::ops::scale(store.grad(id).unwrap(), -0.5).unwrap();
            let new = engine::ops::add(store.value(id), &step).unwrap();
            store.set_value(id, new).unwrap();
        }
    }
    let first = first.unwrap();
    assert!(first > 0.5, "initial loss {first} should be near ln 3");
    assert!(last < 0.02, "loss after training {last} (from {first})");
}
