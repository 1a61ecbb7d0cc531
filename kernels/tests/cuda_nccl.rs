//! NCCL on one GPU: a world-size-1 communicator made from a fresh unique id, and an in-place
//! all-reduce of a flat f32 buffer (what one data-parallel step sends), which must leave the
//! values unchanged. Skips (passes) without a CUDA device or without libnccl.
use kernels::cuda::{download_f32, nccl_present, nccl_version, test_device, upload_f32, Dt, NcclComm, NcclId};

#[test]
fn world_of_one_all_reduce_is_the_identity() {
    let Some(g) = test_device() else { return };
    if !nccl_present() {
        eprintln!("skipped: libnccl.so.2 not found on the library path");
        return;
    }
    eprintln!("NCCL version {}", nccl_version().expect("ncclGetVersion"));
    let id = NcclId::new().expect("ncclGetUniqueId");
    let comm = NcclComm::new(&g, &id, 0, 1).expect("ncclCommInitRank");
    assert_eq!((comm.rank(), comm.world_size()), (0, 1));
    // Odd length, large enough for NCCL to split it into several chunks.
    let host: Vec<f32> = (0..1_000_003).map(|i| (i % 977) as f32 * 0.25 - 3.0).collect();
    let buf = upload_f32(&g, &host, Dt::F32).expect("upload");
    comm.all_reduce_sum_f32(buf.ptr(0), host.len()).expect("ncclAllReduce");
    let back = download_f32(&buf, Dt::F32, 0, host.len()).expect("download");
    assert_eq!(back, host);
}

#[test]
fn a_rank_outside_the_world_is_refused() {
    let Some(g) = test_device() else { return };
    if !nccl_present() {
        eprintln!("skipped: libnccl.so.2 not found on the library path");
        return;
    }
    let id = NcclId::new().expect("ncclGetUniqueId");
    let e = NcclComm::new(&g, &id, 1, 1).expect_err("rank 1 of 1");
    assert!(e.to_string().contains("rank 1 is outside a world of 1"), "{e}");
}
