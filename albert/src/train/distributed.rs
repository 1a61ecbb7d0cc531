//! Data-parallel pretraining: several processes (ranks) train one model on one global batch.
//!
//! Every rank runs the same data loader (same seed, same global batch of B rows) and keeps only
//! its own contiguous block of rows ([`shard`]); so the global batch order is the one a single
//! process sees, whatever the number of ranks. Each rank computes the loss of its rows scaled so
//! that the sum over ranks is the single-process loss (the MLM loss is a mean over the masked
//! positions of the whole global batch, the sentence-order loss a mean over its B rows), runs the
//! backward, and then ONE collective call per step ([`all_reduce_step`]) sums, in one flat f32
//! buffer: every parameter gradient, one "present" flag per parameter (a gradient no rank touched
//! stays absent, as in one process), the step's loss and accuracy parts, the token count and the
//! Ctrl-C flag (so every rank stops at the same step). After it every rank holds the same summed
//! gradient and applies the same clipping and optimizer step, so the replicas stay identical
//! without ever sending weights.
//!
//! Dropout: each rank draws its dropout masks from a generator mixed with its rank, so ranks do
//! not reuse one mask pattern; with dropout > 0 the losses therefore match one process in
//! distribution, not bit for bit. The shipped presets pretrain with dropout 0, where N ranks match
//! one process to rounding (the all-reduce adds the per-rank partial sums in another order).
//!
//! A watchdog ([`Watchdog`]) times every collective: a rank that died or hangs would otherwise
//! leave the others blocked forever; past the timeout the watchdog prints which collective
//! stalled and ends the job (MPI_Abort under MPI). Checkpoints are written by rank 0 alone
//! (temp dir + rename), so the last complete one survives.
//!
//! Next step, not done here: overlapping the all-reduce with the backward (bucketing the
//! gradients of the last layers and starting their reduction while the earlier layers'
//! backward still runs); it needs a hook in `Tape::backward` when a parameter's last
//! contribution arrives. Under full sharing the shared layer's gradient completes only with the
//! first layer's backward and the tied word embeddings at the very end, so little overlaps; with
//! `sharing = none` each layer's bucket can start as soon as its own backward ends.

use crate::data::{PretrainBatch, IGNORE_LABEL};
use crate::model::Inputs;
use autograd::ParamStore;
use engine::{DType, Tensor};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A group of ranks that sum buffers together. Implemented over MPI (`--features mpi`) for host
/// memory, over NCCL for GPU memory, and in process by [`ThreadGroup`] (tests).
pub trait Collective: fmt::Debug {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Sums a 1-D f32 tensor elementwise over all ranks; every rank ends with the sum. The tensor
    /// lives where the parameters do (host for MPI, the rank's GPU for NCCL).
    fn all_reduce_sum(&self, flat: &mut Tensor) -> Result<(), String>;
}

/// One rank's rows of a global batch, and the weights that make the rank's losses add up to the
/// global batch's means.
pub struct Shard {
    pub batch: PretrainBatch,
    /// (masked positions in these rows) / (masked positions in the global batch).
    pub mlm_weight: f64,
    /// (rows here) / (rows in the global batch).
    pub order_weight: f64,
}

/// The rows `[rank * B / world, (rank + 1) * B / world)` of a global batch of B rows (B >= world).
pub fn shard(batch: &PretrainBatch, rank: usize, world: usize) -> Result<Shard, String> {
    let b = batch.batch_size();
    if world == 0 || rank >= world || b < world {
        return Err(format!("cannot give rank {rank} of {world} a share of a batch of {b} rows"));
    }
    let (start, end) = (rank * b / world, (rank + 1) * b / world);
    let e = |e: engine::Error| format!("sharding the batch: {e}");
    let rows = |t: &Tensor| t.narrow(0, start, end - start).map(|v| v.contiguous()).map_err(e);
    let labels = batch.mlm_labels.ids("mlm_labels").map_err(e)?;
    let s = batch.mlm_labels.shape()[1];
    let masked =
        |r: std::ops::Range<usize>| labels[r.start * s..r.end * s].iter().filter(|&&l| l != IGNORE_LABEL).count();
    let (mine, all) = (masked(start..end), masked(0..b));
    let mask = match &batch.inputs.attention_mask {
        Some(m) => Some(rows(m)?),
        None => None,
    };
    let tokens = match &mask {
        Some(m) => m.ids("attention_mask").map_err(e)?.iter().filter(|&&v| v != 0).count(),
        None => (end - start) * s,
    };
    let token_type_ids = match &batch.inputs.token_type_ids {
        Some(t) => Some(rows(t)?),
        None => None,
    };
    Ok(Shard {
        batch: PretrainBatch {
            inputs: Inputs { input_ids: rows(&batch.inputs.input_ids)?, attention_mask: mask, token_type_ids },
            mlm_labels: rows(&batch.mlm_labels)?,
            order_labels: rows(&batch.order_labels)?,
            tokens,
        },
        mlm_weight: if all == 0 { 0.0 } else { mine as f64 / all as f64 },
        order_weight: (end - start) as f64 / b as f64,
    })
}

/// Scalars a step sums besides the gradients: loss, MLM loss, order loss, MLM accuracy, order
/// accuracy, tokens, the Ctrl-C flag.
pub const STEP_STATS: usize = 7;

/// Number of f32 values one step all-reduces: every parameter, a flag per parameter, `stats`.
pub fn flat_len(store: &ParamStore, stats: usize) -> usize {
    store.numel() + store.len() + stats
}

/// The step's one collective: sums every gradient, a present-flag per parameter and `stats`
/// over all ranks, puts the summed gradients back into `store` (views into the reduced buffer,
/// no copy) and returns the summed stats.
pub fn all_reduce_step(c: &dyn Collective, store: &mut ParamStore, stats: &[f64]) -> Result<Vec<f64>, String> {
    let device = store.device();
    let e = |e: engine::Error| format!("gradient all-reduce: {e}");
    let mut parts = Vec::with_capacity(store.len() + 1);
    let mut tail = Vec::with_capacity(store.len() + stats.len());
    for (_, p) in store.iter() {
        let n = p.value.numel();
        match &p.grad {
            Some(g) => {
                parts.push(g.contiguous().reshape(&[n]).map_err(e)?);
                tail.push(1.0f32);
            }
            None => {
                parts.push(Tensor::zeros_on(&[n], DType::F32, device).map_err(e)?);
                tail.push(0.0);
            }
        }
    }
    tail.extend(stats.iter().map(|&x| x as f32));
    parts.push(Tensor::from_vec(tail, &[store.len() + stats.len()]).map_err(e)?.to_device(device).map_err(e)?);
    let mut flat = engine::ops::concat(&parts, 0).map_err(e)?;
    drop(parts);
    c.all_reduce_sum(&mut flat)?;
    let n_grads = store.numel();
    let tail = flat.narrow(0, n_grads, store.len() + stats.len()).map_err(e)?.to_vec_f64();
    let mut off = 0;
    let ids: Vec<_> = store.ids().collect();
    for (i, id) in ids.into_iter().enumerate() {
        let shape = store.value(id).shape().to_vec();
        let n = store.value(id).numel();
        let grad =
            if tail[i] > 0.0 { Some(flat.narrow(0, off, n).and_then(|g| g.reshape(&shape)).map_err(e)?) } else { None };
        store.set_grad(id, grad).map_err(e)?;
        off += n;
    }
    Ok(tail[store.len()..].to_vec())
}

/// Checks that every rank starts from the same step and the same parameters (a resumed run on
/// several machines needs the same checkpoint on each). One collective.
pub fn check_same_start(c: &dyn Collective, store: &ParamStore, step: usize) -> Result<(), String> {
    let (rank, world) = (c.rank(), c.world_size());
    // f32 sums of the parameters: bitwise equal replicas give bitwise equal sums.
    let checksum: f64 = store.iter().map(|(_, p)| p.value.to_vec_f64().iter().sum::<f64>()).sum();
    let mut mine = vec![0.0f32; 2 * world];
    mine[2 * rank] = step as f32;
    mine[2 * rank + 1] = checksum as f32;
    let mut flat = Tensor::from_vec(mine, &[2 * world])
        .and_then(|t| t.to_device(store.device()))
        .map_err(|e| format!("start check: {e}"))?;
    c.all_reduce_sum(&mut flat)?;
    let all = flat.to_vec_f64();
    for r in 0..world {
        if all[2 * r] != all[0] {
            return Err(format!(
                "rank {r} starts at step {} but rank 0 at step {}: with --resume, every rank must read the same \
                 checkpoint (put --out on a filesystem all machines share, or copy it to the same path on each)",
                all[2 * r],
                all[0]
            ));
        }
        if all[2 * r + 1] != all[1] {
            return Err(format!(
                "rank {r} starts from different parameters than rank 0 (parameter sums {} vs {}): every rank \
                 must use the same seed, config and checkpoint",
                all[2 * r + 1],
                all[1]
            ));
        }
    }
    Ok(())
}

/// Per-step dropout generator seed for `rank`: rank 0 keeps the single-process stream.
pub fn rank_seed(seed: u64, rank: usize) -> u64 {
    if rank == 0 {
        seed
    } else {
        seed ^ (rank as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
    }
}

// ------------------------------------------------------------------------------------ watchdog

type OnTimeout = Box<dyn Fn(&str) + Send>;

/// Times collectives from a background thread. [`Watchdog::guard`] arms it around one call; if a
/// call runs past the timeout the thread calls `on_timeout` with a message naming the call (the
/// MPI version aborts the whole job there); should that return, the process exits with status 3.
pub struct Watchdog {
    armed: Arc<Mutex<Option<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Watchdog")
    }
}

impl Watchdog {
    pub fn spawn(timeout: Duration, on_timeout: OnTimeout) -> Watchdog {
        let armed: Arc<Mutex<Option<(Instant, String)>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (armed.clone(), stop.clone());
        let poll = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_millis(500));
        let thread = std::thread::Builder::new()
            .name("collective-watchdog".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    std::thread::sleep(poll);
                    let late = match &*a.lock().unwrap_or_else(|p| p.into_inner()) {
                        Some((t0, what)) if t0.elapsed() > timeout => Some(format!(
                            "{what} did not complete within {} s: another rank has probably died or hangs; \
                             stopping the job (the last complete checkpoint is kept)",
                            timeout.as_secs_f64()
                        )),
                        _ => None,
                    };
                    if let Some(msg) = late {
                        on_timeout(&msg);
                        std::process::exit(3);
                    }
                }
            })
            .ok();
        Watchdog { armed, stop, thread }
    }

    /// Runs `f` (one collective) with the watchdog armed under the description `what`.
    pub fn guard<T>(&self, what: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), what()));
        let out = f();
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        out
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------------------------ in process

/// Ranks as threads of one process, summing through shared memory: the same collective contract
/// as MPI, for tests and for checking the data-parallel arithmetic without an MPI library.
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<ThreadShared>,
}

#[derive(Debug)]
struct ThreadShared {
    world: usize,
    /// (partial sum, ranks that added in this round, round number).
    state: Mutex<(Vec<f32>, usize, u64)>,
    cv: std::sync::Condvar,
    /// Ranks that have read the sum of the current round.
    done: Mutex<usize>,
    barrier: std::sync::Barrier,
}

impl ThreadGroup {
    /// `world` handles, one per rank (move each into its thread).
    pub fn new(world: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(ThreadShared {
            world,
            state: Mutex::new((Vec::new(), 0, 0)),
            cv: std::sync::Condvar::new(),
            done: Mutex::new(0),
            barrier: std::sync::Barrier::new(world),
        });
        (0..world).map(|rank| ThreadGroup { rank, shared: shared.clone() }).collect()
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.shared.world
    }
    fn all_reduce_sum(&self, flat: &mut Tensor) -> Result<(), String> {
        let sh = &self.shared;
        let mine = flat.to_vec_f32();
        // Ranks add in rank order, so the sum is the same on every run.
        {
            let mut st = sh.state.lock().map_err(|_| "thread group poisoned".to_string())?;
            while st.1 != self.rank {
                st = sh.cv.wait(st).map_err(|_| "thread group poisoned".to_string())?;
            }
            if self.rank == 0 {
                st.0 = mine;
            } else if st.0.len() != mine.len() {
                return Err(format!(
                    "all-reduce: rank {} sends {} values, rank 0 sent {}",
                    self.rank,
                    mine.len(),
                    st.0.len()
                ));
            } else {
                st.0.iter_mut().zip(&mine).for_each(|(a, b)| *a += b);
            }
            st.1 += 1;
            sh.cv.notify_all();
            while st.1 < sh.world {
                st = sh.cv.wait(st).map_err(|_| "thread group poisoned".to_string())?;
            }
            *flat = Tensor::from_vec(st.0.clone(), flat.shape())
                .and_then(|t| t.to_device(flat.device()))
                .map_err(|e| e.to_string())?;
        }
        // The last reader resets the round; nobody starts the next one before that.
        {
            let mut d = sh.done.lock().map_err(|_| "thread group poisoned".to_string())?;
            *d += 1;
            if *d == sh.world {
                *d = 0;
                let mut st = sh.state.lock().map_err(|_| "thread group poisoned".to_string())?;
                st.1 = 0;
                st.2 += 1;
            }
        }
        sh.barrier.wait();
        Ok(())
    }
}

// ------------------------------------------------------------------------------------ NCCL

/// GPU ranks: the all-reduce runs on device memory through NCCL (one process per GPU). The
/// communicator's unique id must reach every rank first: `albert pretrain --distributed
/// --device cuda` sends it with an MPI broadcast; [`NcclGroup::single`] makes a world of one.
pub struct NcclGroup {
    comm: kernels::cuda::NcclComm,
    watchdog: Watchdog,
    calls: std::cell::Cell<u64>,
}

impl fmt::Debug for NcclGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NcclGroup({:?})", self.comm)
    }
}

impl NcclGroup {
    /// Joins the communicator `id` as `rank` of `world` on GPU `ordinal`; collectives that run
    /// past `timeout` end the process through `on_timeout`.
    pub fn new(
        ordinal: usize,
        id: &kernels::cuda::NcclId,
        rank: usize,
        world: usize,
        timeout: Duration,
        on_timeout: OnTimeout,
    ) -> Result<NcclGroup, String> {
        let gpu = kernels::cuda::gpu(ordinal).map_err(|e| e.to_string())?;
        let comm = kernels::cuda::NcclComm::new(&gpu, id, rank, world).map_err(|e| e.to_string())?;
        Ok(NcclGroup { comm, watchdog: Watchdog::spawn(timeout, on_timeout), calls: std::cell::Cell::new(0) })
    }

    /// A world of one on GPU `ordinal` (the single-GPU path; its all-reduce is the identity).
    pub fn single(ordinal: usize, timeout: Duration) -> Result<NcclGroup, String> {
        let id = kernels::cuda::NcclId::new().map_err(|e| e.to_string())?;
        NcclGroup::new(ordinal, &id, 0, 1, timeout, Box::new(|msg| eprintln!("error: {msg}")))
    }
}

impl Collective for NcclGroup {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn world_size(&self) -> usize {
        self.comm.world_size()
    }
    fn all_reduce_sum(&self, flat: &mut Tensor) -> Result<(), String> {
        let n = flat.numel();
        if flat.dtype() != DType::F32 {
            return Err(format!("NCCL all-reduce: expected an f32 buffer, got {}", flat.dtype()));
        }
        let owned = flat.contiguous();
        let ptr = owned
            .cuda_ptr()
            .ok_or_else(|| format!("NCCL all-reduce: the buffer is on {}, not a GPU", flat.device()))?;
        let k = self.calls.get() + 1;
        self.calls.set(k);
        let what = || format!("rank {}: NCCL all-reduce #{k} of {:.1} MB", self.comm.rank(), (n * 4) as f64 / 1e6);
        self.watchdog
            .guard(what, || {
                self.comm.all_reduce_sum_f32(ptr, n)?;
                self.comm.gpu().synchronize()
            })
            .map_err(|e| e.to_string())?;
        *flat = owned;
        Ok(())
    }
}
