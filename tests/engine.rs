//! Engine behaviour: views without copies, strided inputs through every kind of op, broadcasting,
//! dtype conversions, copy-on-write, and error messages that name the op and the shapes.

use engine::{ops, DType, Device, Rng, Tensor};
use proptest::prelude::*;

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Rng::new(seed).uniform_tensor(shape, -1.0, 1.0, DType::F32).unwrap()
}

fn close(a: &Tensor, b: &Tensor, tol: f32) {
    assert_eq!(a.shape(), b.shape());
    for (i, (x, y)) in a.to_vec_f32().iter().zip(b.to_vec_f32()).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

#[test]
fn views_share_storage_and_copy_only_when_asked() {
    let x = rand(1, &[2, 3, 4]);
    let t = x.transpose(0, 2).unwrap();
    assert!(t.same_storage(&x) && !t.is_contiguous());
    assert_eq!(t.shape(), &[4, 3, 2]);
    let n = x.narrow(1, 1, 2).unwrap();
    assert!(n.same_storage(&x));
    let v = x.to_vec_f32();
    assert_eq!(n.to_vec_f32()[0], v[4]);
    let c = t.contiguous();
    assert!(!c.same_storage(&x) && c.is_contiguous());
    // element (i, j, k) of the transpose is (k, j, i) of x
    assert_eq!(c.to_vec_f32()[6 + 2 + 1], v[12 + 4 + 1]); // (1,1,1) of both
    let r = x.reshape(&[6, 4]).unwrap();
    assert!(r.same_storage(&x));
    let b = rand(2, &[3, 1]).broadcast_to(&[2, 3, 5]).unwrap();
    assert_eq!(b.layout().strides(), &[0, 1, 0]);
}

#[test]
fn matmul_error_names_op_and_shapes() {
    let a = Tensor::zeros(&[8, 128, 768], DType::F32);
    let b = Tensor::zeros(&[512, 768], DType::F32);
    let e = ops::matmul(&a, &b, false, false, None).unwrap_err();
    assert_eq!(e.to_string(), "matmul: lhs [8,128,768] and rhs [512,768]: inner dimensions 768 vs 512");
    let e = ops::add(&Tensor::zeros(&[2, 3], DType::F32), &Tensor::zeros(&[2, 3], DType::F64)).unwrap_err();
    assert!(e.to_string().starts_with("add: dtypes differ: f32 [2,3] vs f64 [2,3]"), "{e}");
    let e = ops::gelu_tanh(&Tensor::zeros(&[2], DType::BF16)).unwrap_err();
    assert!(e.to_string().contains("gelu_tanh: dtype bf16 is not a compute type"), "{e}");
    let ids = Tensor::from_i64(vec![0, 7, 2], &[3]).unwrap();
    let e = ops::embedding(&Tensor::zeros(&[5, 4], DType::F32), &ids).unwrap_err();
    assert_eq!(e.to_string(), "embedding: index 7 at position 1 is out of range for 5 rows");
    let e = ops::layer_norm(
        &Tensor::zeros(&[2, 4], DType::F32),
        &Tensor::zeros(&[3], DType::F32),
        &Tensor::zeros(&[4], DType::F32),
        1e-12,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "layer_norm: gamma has shape [3], expected [4]");
    let e = Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).unwrap_err();
    assert!(e.to_string().contains("5 values cannot fill shape [2,3]"), "{e}");
    let e = ops::cross_entropy(&Tensor::zeros(&[2, 3], DType::F32), &Tensor::from_i64(vec![1, 3], &[2]).unwrap(), -100)
        .unwrap_err();
    assert!(e.to_string().contains("target 3 at row 1 is out of range for 3 classes"), "{e}");
    // Without a GPU, moving to one is a clear error (with one, tests/cuda_ops.rs covers it).
    if kernels::cuda::driver::device_count() == 0 {
        let e = Tensor::zeros(&[2], DType::F32).to_device(Device::Cuda(0)).unwrap_err();
        assert!(e.to_string().contains("cuda:0"), "{e}");
    }
    let e = Tensor::zeros(&[2], DType::F64).to_device(Device::Cuda(7)).unwrap_err();
    assert!(e.to_string().contains("cuda:7"), "{e}");
}

#[test]
fn dtype_round_trips() {
    let x = Tensor::from_vec(vec![1.0f32, -2.5, 3.140625, 1e-3, 65504.0], &[5]).unwrap();
    for d in [DType::F64, DType::BF16, DType::F16] {
        let back = x.to_dtype(d).to_dtype(DType::F32).to_vec_f32();
        let tol = match d {
            DType::BF16 => 1.0 / 128.0, // 8 significant bits
            DType::F16 => 1.0 / 1024.0, // 11 significant bits
            _ => 0.0,
        };
        for (a, b) in back.iter().zip(x.to_vec_f32()) {
            assert!((a - b).abs() <= tol * b.abs(), "{d}: {a} vs {b}");
        }
    }
    let bytes = x.to_dtype(DType::BF16).to_bytes();
    assert_eq!(bytes.len(), 10);
    let y = Tensor::from_bytes(&bytes, DType::BF16, &[5]).unwrap();
    assert_eq!(y.to_vec_f32()[1], -2.5);
    // unaligned source bytes are fine
    let raw = x.to_bytes();
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&raw);
    assert_eq!(Tensor::from_bytes(&shifted[1..], DType::F32, &[5]).unwrap().to_vec_f32(), x.to_vec_f32());
}

#[test]
fn add_assign_copies_on_write() {
    let a = rand(1, &[3, 4]);
    let mut b = a.clone();
    b.add_assign(&rand(2, &[3, 4])).unwrap();
    assert_ne!(a.to_vec_f32(), b.to_vec_f32());
    assert_eq!(a.to_vec_f32(), rand(1, &[3, 4]).to_vec_f32(), "the other handle must not change");
}

#[test]
fn rng_tensors_reproduce() {
    let a = Rng::new(3).truncated_normal_tensor(&[100], 0.02, DType::F32).unwrap();
    let b = Rng::new(3).truncated_normal_tensor(&[100], 0.02, DType::F32).unwrap();
    assert_eq!(a.to_vec_f32(), b.to_vec_f32());
    let (_, m1) = ops::dropout(&rand(1, &[50]), 0.1, &mut Rng::new(9)).unwrap();
    let (_, m2) = ops::dropout(&rand(1, &[50]), 0.1, &mut Rng::new(9)).unwrap();
    assert_eq!(m1.keep().unwrap(), m2.keep().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every op on a non-contiguous view (a permuted, narrowed tensor) equals the same op on a
    /// dense copy: strided reads inside matmul and the contiguous() fallback elsewhere agree.
    #[test]
    fn ops_on_strided_views_match_dense_copies(m in 1usize..20, k in 1usize..20, n in 1usize..20, seed in 0u64..1000) {
        let big = rand(seed, &[k + 2, m + 1]);
        let a = big.narrow(0, 1, k).unwrap().narrow(1, 1, m).unwrap().transpose(0, 1).unwrap(); // [m, k] view
        prop_assert!(!a.is_contiguous() || m == 1 || k == 1);
        let ad = a.contiguous();
        let b = rand(seed + 1, &[n, k]).transpose(0, 1).unwrap(); // [k, n] view
        let bd = b.contiguous();
        close(&ops::matmul(&a, &b, false, false, None).unwrap(), &ops::matmul(&ad, &bd, false, false, None).unwrap(), 1e-5);
        close(&ops::matmul(&a, &a, true, false, None).unwrap(), &ops::matmul(&ad, &ad, true, false, None).unwrap(), 1e-5);
        close(&ops::gelu_tanh(&a).unwrap(), &ops::gelu_tanh(&ad).unwrap(), 0.0);
        close(&ops::softmax(&a, None, 0.7).unwrap(), &ops::softmax(&ad, None, 0.7).unwrap(), 0.0);
        close(&ops::sum(&a, 0, false).unwrap(), &ops::sum(&ad, 0, false).unwrap(), 0.0);
        let row = rand(seed + 2, &[k]);
        close(&ops::mul(&a, &row).unwrap(), &ops::mul(&ad, &row).unwrap(), 0.0);
        let (g, bt) = (rand(seed + 3, &[k]), rand(seed + 4, &[k]));
        close(&ops::layer_norm(&a, &g, &bt, 1e-5).unwrap().0, &ops::layer_norm(&ad, &g, &bt, 1e-5).unwrap().0, 0.0);
    }

    /// Broadcast binary ops equal the explicit loop over the broadcast index.
    #[test]
    fn broadcasting_matches_explicit_indexing(a0 in 1usize..5, a1 in 1usize..5, seed in 0u64..1000) {
        let a = rand(seed, &[a0, 1, 3]);
        let b = rand(seed + 1, &[a1, 3]);
        let out = ops::sub(&a, &b).unwrap();
        prop_assert_eq!(out.shape(), &[a0, a1, 3]);
        let (av, bv, ov) = (a.to_vec_f32(), b.to_vec_f32(), out.to_vec_f32());
        for i in 0..a0 { for j in 0..a1 { for c in 0..3 {
            prop_assert_eq!(ov[(i * a1 + j) * 3 + c], av[i * 3 + c] - bv[j * 3 + c]);
        }}}
    }
}

/// The shared-weight backward (an accumulating gemm on the GPU, form-then-add on the CPU) must
/// equal forming the gradient and adding it, for Linear weights (trans_b) and plain ones.
#[test]
fn weight_gradient_accumulates_in_place() {
    for trans_b in [true, false] {
        let a = rand(1, &[2, 5, 7]);
        let b = if trans_b { rand(2, &[3, 7]) } else { rand(2, &[7, 3]) };
        let dout = rand(3, &[2, 5, 3]);
        let (da, db, dbias) = ops::matmul_bwd(&dout, &a, &b, false, trans_b, true).unwrap();
        let earlier = rand(4, b.shape());
        let mut acc = ops::scale(&earlier, 1.0).unwrap(); // a fresh, unshared buffer
        let (da2, dbias2) = ops::matmul_bwd_accumulate(&dout, &a, &b, false, trans_b, true, &mut acc).unwrap();
        close(&da2, &da, 1e-6);
        close(&dbias2.unwrap(), &dbias.unwrap(), 1e-6);
        close(&acc, &ops::add(&earlier, &db).unwrap(), 1e-5);
        // A gradient buffer shared with another handle is not written through: copy, then add.
        let shared = earlier.clone();
        let mut acc = earlier.clone();
        ops::matmul_bwd_accumulate(&dout, &a, &b, false, trans_b, true, &mut acc).unwrap();
        assert_eq!(shared.to_vec_f32(), earlier.to_vec_f32());
        close(&acc, &ops::add(&earlier, &db).unwrap(), 1e-5);
    }
}

/// The fused Linear + GELU is the two ops, bit for bit, on the CPU.
#[test]
fn linear_gelu_equals_linear_then_gelu() {
    let (x, w, b) = (rand(1, &[2, 9, 16]), rand(2, &[24, 16]), rand(3, &[24]));
    let (pre, y) = ops::linear_gelu(&x, &w, &b, ops::Gelu::Tanh).unwrap();
    let pre2 = ops::matmul(&x, &w, false, true, Some(&b)).unwrap();
    assert_eq!(pre.to_vec_f32(), pre2.to_vec_f32());
    assert_eq!(y.to_vec_f32(), ops::gelu_tanh(&pre2).unwrap().to_vec_f32());
    let e = ops::linear_gelu(&x, &rand(4, &[24, 15]), &b, ops::Gelu::Erf).unwrap_err();
    assert!(e.to_string().contains("linear_gelu"), "{e}");
}
