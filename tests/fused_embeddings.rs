//! The fused factorised embedding (one forward, one backward) against the unfused composition of
//! engine ops: embedding x3, add, layer_norm, linear. f32, ALBERT-like widths with odd sizes.

use autograd::{ParamStore, Tape, Var};
use engine::{DType, Rng, Tensor};

fn close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (a, b) = (a.to_vec_f32(), b.to_vec_f32());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: fused {x} vs unfused {y} (scale {scale})");
    }
}

#[test]
fn fused_matches_unfused_forward_and_gradients() {
    let (v, p, t, e, h, b, s) = (211, 37, 2, 24, 52, 3, 17);
    let mut rng = Rng::new(11);
    let shapes: [&[usize]; 7] = [&[v, e], &[p, e], &[t, e], &[e], &[e], &[h, e], &[h]];
    let mut store = ParamStore::new();
    let ids: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, sh)| store.add(&format!("p{i}"), rng.normal_tensor(sh, 0.0, 0.5, DType::F32).unwrap()).unwrap())
        .collect();
    let tok: Vec<i64> = (0..b * s).map(|i| ((i * 37 + 5) % 17) as i64).collect(); // repeats
    let tok = Tensor::from_i64(tok, &[b, s]).unwrap();
    let ty = Tensor::from_i64((0..b * s).map(|i| i64::from(i % s >= s / 2)).collect(), &[b, s]).unwrap();
    let pos = Tensor::from_i64((0..b * s).map(|i| (i % s) as i64).collect(), &[b, s]).unwrap();
    let dout = rng.normal_tensor(&[b, s, h], 0.0, 1.0, DType::F32).unwrap();

    // fused
    let tape = Tape::new();
    let pv: Vec<Var> = ids.iter().map(|&id| tape.param(&store, id)).collect();
    let params = [&pv[0], &pv[1], &pv[2], &pv[3], &pv[4], &pv[5], &pv[6]];
    let y = Var::albert_embeddings(params, &tok, &ty, &pos, 1e-12, 0.0, None, &mut Rng::new(0)).unwrap();
    let loss = y.mul(&tape.constant(dout.clone())).unwrap().sum_all().unwrap();
    let fused_out = y.value().clone();
    tape.backward(&loss, &mut store).unwrap();
    let fused_grads: Vec<Tensor> = ids.iter().map(|&id| store.grad(id).unwrap().clone()).collect();
    store.zero_grad();

    // unfused
    let tape = Tape::new();
    let pv: Vec<Var> = ids.iter().map(|&id| tape.param(&store, id)).collect();
    let x = pv[0]
        .embedding(&tok)
        .unwrap()
        .add(&pv[1].embedding(&pos).unwrap())
        .unwrap()
        .add(&pv[2].embedding(&ty).unwrap())
        .unwrap();
    let y = x.layer_norm(&pv[3], &pv[4], 1e-12).unwrap().linear(&pv[5], Some(&pv[6])).unwrap();
    let loss = y.mul(&tape.constant(dout)).unwrap().sum_all().unwrap();
    tape.backward(&loss, &mut store).unwrap();

    // Same kernels in a different order: differences are f32 rounding, relative to each tensor's scale.
    close("output", &fused_out, y.value(), 1e-5);
    let names = ["word", "position", "token_type", "ln_gamma", "ln_beta", "proj_w", "proj_b"];
    for (i, &id) in ids.iter().enumerate() {
        close(names[i], &fused_grads[i], store.grad(id).unwrap(), 2e-5);
    }
}

/// padding_idx (transformers' nn.Embedding(padding_idx=pad)): lookups of that id add nothing to
/// its row; every other gradient is unchanged.
#[test]
fn padding_idx_row_gets_no_lookup_gradient() {
    let mut rng = Rng::new(5);
    let shapes: [&[usize]; 7] = [&[9, 6], &[8, 6], &[2, 6], &[6], &[6], &[5, 6], &[5]];
    let mut store = ParamStore::new();
    let ids: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, sh)| store.add(&format!("p{i}"), rng.normal_tensor(sh, 0.0, 0.5, DType::F32).unwrap()).unwrap())
        .collect();
    let tok = Tensor::from_i64(vec![3, 0, 0, 7, 3, 0, 1, 2], &[2, 4]).unwrap();
    let ty = Tensor::from_i64(vec![0; 8], &[2, 4]).unwrap();
    let pos = Tensor::from_i64(vec![0, 1, 2, 3, 0, 1, 2, 3], &[2, 4]).unwrap();
    let mut grads = Vec::new();
    for pad in [None, Some(0)] {
        let tape = Tape::new();
        let pv: Vec<Var> = ids.iter().map(|&id| tape.param(&store, id)).collect();
        let params = [&pv[0], &pv[1], &pv[2], &pv[3], &pv[4], &pv[5], &pv[6]];
        let y = Var::albert_embeddings(params, &tok, &ty, &pos, 1e-12, 0.0, pad, &mut Rng::new(0)).unwrap();
        store.zero_grad();
        tape.backward(&y.sum_all().unwrap(), &mut store).unwrap();
        grads.push(ids.iter().map(|&id| store.grad(id).unwrap().to_vec_f32()).collect::<Vec<_>>());
    }
    let (free, padded) = (&grads[0], &grads[1]);
    assert!(free[0][..6].iter().any(|&g| g != 0.0), "row 0 is looked up three times");
    assert!(padded[0][..6].iter().all(|&g| g == 0.0), "padding row must get no gradient");
    assert_eq!(free[0][6..], padded[0][6..], "other rows unchanged");
    assert_eq!(free[1..], padded[1..], "other parameters unchanged");
}
