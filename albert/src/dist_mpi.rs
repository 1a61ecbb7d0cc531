//! MPI ranks (rsmpi over the system MPI library): `albert pretrain --distributed` under `mpirun`.
//! On the CPU every step's flat gradient buffer is summed with one `MPI_Allreduce`; with
//! `--device cuda` MPI only starts the job (rank, world size, the NCCL unique id broadcast from
//! rank 0) and NCCL sums on the GPUs. Collectives are timed by a watchdog that calls `MPI_Abort`
//! when one stalls, so a dead rank stops the job with a message instead of a hang.

use crate::train::distributed::{Collective, NcclGroup, Watchdog};
use engine::Tensor;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// This process's place in the MPI job.
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    watchdog: Watchdog,
    calls: Cell<u64>,
    // Last: MPI_Finalize runs when the universe drops, after the communicator.
    _universe: Universe,
}

impl fmt::Debug for Mpi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mpi(rank {} of {})", self.rank, self.size)
    }
}

/// Prints `msg` and aborts the whole MPI job (every rank, through mpirun).
fn abort_job(msg: &str) {
    eprintln!("error: {msg}");
    // SAFETY: MPI is initialised (the watchdog lives inside `Mpi`); MPI_Abort does not return.
    // It is called from the watchdog thread, which the funneled threading level does not
    // promise to support, but at this point the job is being torn down anyway.
    unsafe {
        mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 3);
    }
}

impl Mpi {
    /// Initialises MPI (once per process). `timeout` bounds every collective.
    pub fn init(timeout: Duration) -> Result<Mpi, String> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or("MPI is already initialised in this process")?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Mpi {
            world,
            rank,
            size,
            watchdog: Watchdog::spawn(timeout, Box::new(abort_job)),
            calls: Cell::new(0),
            _universe: universe,
        })
    }

    /// The rank on this machine (OpenMPI's OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID),
    /// which picks the GPU; the global rank when the launcher does not say.
    pub fn local_rank(&self) -> usize {
        ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse().ok())
            .unwrap_or(self.rank)
    }

    /// A NCCL group over the same ranks on GPU `ordinal`: rank 0 makes the unique id and MPI
    /// broadcasts its 128 bytes.
    pub fn nccl(&self, ordinal: usize, timeout: Duration) -> Result<NcclGroup, String> {
        let mut id = [0u8; 128];
        if self.rank == 0 {
            id = kernels::cuda::NcclId::new().map_err(|e| e.to_string())?.0;
        }
        self.watchdog.guard(
            || format!("rank {}: MPI broadcast of the NCCL unique id", self.rank),
            || self.world.process_at_rank(0).broadcast_into(&mut id[..]),
        );
        NcclGroup::new(ordinal, &kernels::cuda::NcclId(id), self.rank, self.size, timeout, Box::new(abort_job))
    }

    /// Test hook for the failure test: `ALBERT_TEST_STALL=RANK:CALL` makes rank RANK stop
    /// responding (sleep forever) before its CALL-th all-reduce, as a dead or hung machine would.
    fn maybe_stall(&self, call: u64) {
        let Ok(v) = std::env::var("ALBERT_TEST_STALL") else { return };
        let mut it = v.split(':').map(|x| x.parse::<u64>().ok());
        if let (Some(Some(r)), Some(Some(c))) = (it.next(), it.next()) {
            if r == self.rank as u64 && c == call {
                eprintln!("rank {}: ALBERT_TEST_STALL: stalling before all-reduce #{call}", self.rank);
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
        }
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, flat: &mut Tensor) -> Result<(), String> {
        if flat.device().is_cuda() {
            return Err("the MPI all-reduce takes host buffers; GPU ranks sum through NCCL".into());
        }
        let k = self.calls.get() + 1;
        self.calls.set(k);
        self.maybe_stall(k);
        let send = flat.f32_values();
        let n = send.len();
        if n > i32::MAX as usize {
            return Err(format!("MPI all-reduce: {n} values exceed MPI's int count"));
        }
        let mut recv = vec![0f32; n];
        let what = || format!("rank {}: MPI all-reduce #{k} of {:.1} MB", self.rank, (n * 4) as f64 / 1e6);
        self.watchdog.guard(what, || self.world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum()));
        drop(send);
        *flat = Tensor::from_vec(recv, &[n]).map_err(|e| format!("MPI all-reduce: {e}"))?;
        Ok(())
    }
}
