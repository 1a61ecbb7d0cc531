// Row gather and its backward, scatter-add (the CPU spec: kernels/src/cpu/gather.rs).
//
//   fwd: out[r, :] = table[idx[r], :]             out: [rows, cols] T; table: [table_rows, cols] T
//   bwd: dtable[idx[r], :] += dout[r, :]           dtable: [table_rows, cols] f32; dout: [rows, cols] T
//
// idx: [rows] i64. The engine validates ids before calling; the kernels still never touch memory
// outside the table: the forward writes a row of zeros for an id outside [0, table_rows), and the
// backward skips such a row.
//
// The forward is a copy: with `vec16` (the launcher checks that rows are whole 16-byte units and
// both buffers 16-byte aligned) it moves uint4s, otherwise single elements. Threads walk the flat
// [rows, units-per-row] index space (64-bit) with a grid stride.
//
// The backward adds with f32 atomicAdd, one thread per element: repeated ids add up in an
// unspecified order, so the result is not bitwise reproducible when ids repeat.

template <typename T>
__device__ __forceinline__ void gather_fwd(T* __restrict__ out, const T* __restrict__ table,
                                           const long long* __restrict__ idx, int rows, int cols, int table_rows,
                                           int vec16) {
    if (vec16) {
        // A row is `units` uint4s; cols * sizeof(T) is a multiple of 16 here.
        const long long units = (long long)cols * sizeof(T) / 16;
        const long long total = (long long)rows * units;
        const uint4* tab = (const uint4*)table;
        uint4* o = (uint4*)out;
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
             i += (long long)gridDim.x * blockDim.x) {
            const long long r = i / units, u = i - r * units;
            const long long id = idx[r];
            uint4 v = make_uint4(0u, 0u, 0u, 0u);
            if (id >= 0 && id < table_rows) v = tab[id * units + u];
            o[i] = v;
        }
    } else {
        const long long total = (long long)rows * cols;
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
             i += (long long)gridDim.x * blockDim.x) {
            const long long r = i / cols, c = i - r * cols;
            const long long id = idx[r];
            out[i] = (id >= 0 && id < table_rows) ? table[id * cols + c] : from_f32<T>(0.0f);
        }
    }
}

template <typename T>
__device__ __forceinline__ void gather_bwd(float* __restrict__ dtable, const T* __restrict__ dout,
                                           const long long* __restrict__ idx, int rows, int cols, int table_rows) {
    const long long total = (long long)rows * cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / cols, c = i - r * cols;
        const long long id = idx[r];
        if (id >= 0 && id < table_rows) atomicAdd(dtable + id * cols + c, to_f32(dout[i]));
    }
}

#define GATHER_ALL(T, S)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) gather_rows_fwd_##S(                                \
        T* out, const T* table, const long long* idx, int rows, int cols, int table_rows, int vec16) {     \
        gather_fwd<T>(out, table, idx, rows, cols, table_rows, vec16);                                     \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(256) gather_rows_bwd_##S(                                \
        float* dtable, const T* dout, const long long* idx, int rows, int cols, int table_rows) {          \
        gather_bwd<T>(dtable, dout, idx, rows, cols, table_rows);                                          \
    }

GATHER_ALL(float, f32)
GATHER_ALL(bf16, bf16)
