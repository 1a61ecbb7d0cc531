//! The data-parallel trainer on the GPU: a NCCL world of one (the single-GPU path) gives the losses
//! of the same run without a collective. Skips without a CUDA device or without libnccl.
mod dist_common;

use albert::data::CorpusSource;
use albert::train::distributed::NcclGroup;
use albert::train::{self, RunOptions};
use dist_common::{assert_same_losses, config, run_opts, settings, small_corpus, temp, tokenizer};
use std::rc::Rc;
use std::time::Duration;

#[test]
fn nccl_world_of_one_matches_no_collective_on_the_gpu() {
    if kernels::cuda::test_device().is_none() {
        return;
    }
    if !kernels::cuda::nccl_present() {
        eprintln!("skipped: libnccl.so.2 not found on the library path");
        return;
    }
    let dir = temp("nccl");
    let corpus = small_corpus(&dir);
    let tok = tokenizer();
    let cfg = config(&tok);
    let s = settings(&corpus, 4, 1);
    let gpu = engine::Device::Cuda(0);
    let plain = RunOptions { device: gpu, ..run_opts(&dir.join("plain")) };
    let a = train::pretrain(&s, &plain, &cfg, tok.clone(), CorpusSource::path(&corpus)).unwrap();
    let group = NcclGroup::single(0, Duration::from_secs(60)).unwrap();
    let nccl = RunOptions { device: gpu, collective: Some(Rc::new(group)), ..run_opts(&dir.join("nccl")) };
    let b = train::pretrain(&s, &nccl, &cfg, tok, CorpusSource::path(&corpus)).unwrap();
    assert_same_losses(&a.train_rows, &b.train_rows, "NCCL world of one");
    let _ = std::fs::remove_dir_all(&dir);
}
