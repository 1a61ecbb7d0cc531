// Sums over one axis of a tensor viewed as (outer, len, inner), and the sum of squares of a
// vector (global-norm clipping). Storage f32 or bf16; every sum accumulates in f32.
//
// Kernels (launchers in kernels/src/cuda/reduce.rs):
//   sum_rows_warp_{f32,bf16}    inner == 1, short rows: one warp per row.
//   sum_rows_block_{f32,bf16}   inner == 1, long rows: one block per (row, segment of the row).
//   sum_cols_{f32,bf16}         inner > 1: a block sums a 64-column tile over a segment of len.
//   sum_partials_{f32,bf16}     second stage: out[o, i] = sum over segments of the partials.
//   sum_squares_partial_{f32,bf16}, sum_final_f32   sum of x^2 in two stages.
// Determinism: the split of the work (segments, tiles) depends only on the sizes, never on the
// device, and every reduction tree is fixed (no atomics), so a result is the same bit for bit on
// every run and every card.

// This thread's share of sum over [start, end) of x (or x^2), block-strided: thread t takes
// 16-byte vectors t, t + blockDim.x, ... when x + start is aligned, then the tail elements.
template <bool SQUARE, typename T>
__device__ __forceinline__ float thread_range_sum(const T* x, long long start, long long end) {
    constexpr int N = Vec16<T>::N;
    float s = 0.0f;
    long long done = start;
    if (aligned16(x + start)) {
        const long long nv = (end - start) / N;
        const T* base = x + start;
#pragma unroll 2
        for (long long v = threadIdx.x; v < nv; v += blockDim.x) {
            float f[N];
            load16(base + v * N, f);
#pragma unroll
            for (int j = 0; j < N; ++j) s += SQUARE ? f[j] * f[j] : f[j];
        }
        done = start + nv * N;
    }
    for (long long i = done + threadIdx.x; i < end; i += blockDim.x) {
        const float f = to_f32(x[i]);
        s += SQUARE ? f * f : f;
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// inner == 1: row sums.

// out: (outer) = row sums of inp: (outer, len). One warp per row, 8 rows per 256-thread block,
// grid-stride over rows.
template <typename T>
__device__ __forceinline__ void sum_rows_warp(T* out, const T* inp, long long outer, long long len) {
    const int lane = threadIdx.x & 31;
    const long long warps_per_block = blockDim.x >> 5;
    for (long long r = blockIdx.x * warps_per_block + (threadIdx.x >> 5); r < outer;
         r += (long long)gridDim.x * warps_per_block) {
        const T* row = inp + r * len;
        float s = 0.0f;
        for (long long l = lane; l < len; l += 32) s += to_f32(row[l]);
        s = warp_sum(s);
        if (lane == 0) out[r] = from_f32<T>(s);
    }
}

// Row r, segment blockIdx.y = [y * seg, min(len, (y + 1) * seg)): summed by the whole block.
// With one segment the sum goes to out[r]; otherwise to partial[r * splits + y] (f32).
// Grid: (row blocks, splits); grid-stride over rows.
template <typename T>
__device__ __forceinline__ void sum_rows_block(T* out, float* partial, const T* inp, long long outer, long long len,
                                               long long seg, int splits) {
    __shared__ float scratch[32];
    const long long l0 = (long long)blockIdx.y * seg;
    const long long l1 = min(len, l0 + seg);
    for (long long r = blockIdx.x; r < outer; r += gridDim.x) {
        float s = thread_range_sum<false>(inp + r * len, l0, l1);
        s = block_sum(s, scratch);
        if (threadIdx.x == 0) {
            if (splits == 1) {
                out[r] = from_f32<T>(s);
            } else {
                partial[r * splits + blockIdx.y] = s;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// inner > 1: column sums.

#define COL_TILE 64  // columns per block: 2 per thread of a 32-wide row of threads
#define COL_ROWS 8   // threadIdx.y: rows of the segment read in parallel

// Block (32, COL_ROWS); grid (outer * tiles, splits), grid-stride over x. Block (o, tile, y)
// sums columns [tile * 64, tile * 64 + 64) of slab o over rows [y * seg, min(len, (y+1) * seg)):
// thread (tx, ty) takes columns tile*64 + tx and + 32, rows ty, ty + 8, ... (a warp reads
// 32 consecutive elements of a row per load); the 8 row-partials are then summed in shared
// memory in a fixed order. One segment: out[o, c] (T); several: partial[(o*splits + y)*inner + c].
template <typename T>
__device__ __forceinline__ void sum_cols(T* out, float* partial, const T* inp, long long outer, long long len,
                                         long long inner, long long seg, int splits, long long tiles) {
    __shared__ float sm[COL_ROWS][COL_TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long l0 = (long long)blockIdx.y * seg;
    const long long l1 = min(len, l0 + seg);
    for (long long bt = blockIdx.x; bt < outer * tiles; bt += gridDim.x) {
        const long long o = bt / tiles;
        const long long c0 = (bt - o * tiles) * COL_TILE + tx;
        const long long c1 = c0 + 32;
        const bool in0 = c0 < inner, in1 = c1 < inner;
        const T* slab = inp + o * len * inner;
        float s0 = 0.0f, s1 = 0.0f;
#pragma unroll 4
        for (long long l = l0 + ty; l < l1; l += COL_ROWS) {
            const T* row = slab + l * inner;
            if (in0) s0 += to_f32(row[c0]);
            if (in1) s1 += to_f32(row[c1]);
        }
        sm[ty][tx] = s0;
        sm[ty][tx + 32] = s1;
        __syncthreads();
        if (ty < 2) {
            // ty 0 finishes column c0, ty 1 column c1
            const int col = tx + 32 * ty;
            const long long c = ty == 0 ? c0 : c1;
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < COL_ROWS; ++k) s += sm[k][col];
            if (c < inner) {
                if (splits == 1) {
                    out[o * inner + c] = from_f32<T>(s);
                } else {
                    partial[(o * splits + blockIdx.y) * inner + c] = s;
                }
            }
        }
        __syncthreads();  // sm is rewritten by the next tile
    }
}

// out: (outer, inner) = sum over k < splits of partial: (outer, splits, inner), in order of k.
template <typename T>
__device__ __forceinline__ void sum_partials(T* out, const float* partial, long long outer, long long inner, int splits) {
    const long long n = outer * inner;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long o = idx / inner, i = idx - o * inner;
        const float* p = partial + o * splits * inner + i;
        float s = 0.0f;
        for (int k = 0; k < splits; ++k) s += p[(long long)k * inner];
        out[idx] = from_f32<T>(s);
    }
}

// ---------------------------------------------------------------------------------------------
// Sum of squares.

// partial[b] = sum of x^2 over [b * seg, min(n, (b + 1) * seg)); one block per segment.
template <typename T>
__device__ __forceinline__ void sum_squares_partial(float* partial, const T* x, long long n, long long seg) {
    __shared__ float scratch[32];
    const long long start = (long long)blockIdx.x * seg;
    const long long end = min(n, start + seg);
    float s = thread_range_sum<true>(x, start, end);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// out[0] = sum of partial[0..count), one block, fixed order.
extern "C" __global__ void sum_final_f32(float* out, const float* partial, int count) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s;
}

#define REDUCE(T, SUF)                                                                                       \
    extern "C" __global__ void sum_rows_warp_##SUF(T* out, const T* inp, long long outer, long long len) {   \
        sum_rows_warp<T>(out, inp, outer, len);                                                              \
    }                                                                                                        \
    extern "C" __global__ void sum_rows_block_##SUF(T* out, float* partial, const T* inp, long long outer,   \
                                                    long long len, long long seg, int splits) {              \
        sum_rows_block<T>(out, partial, inp, outer, len, seg, splits);                                       \
    }                                                                                                        \
    extern "C" __global__ void sum_cols_##SUF(T* out, float* partial, const T* inp, long long outer,         \
                                              long long len, long long inner, long long seg, int splits,     \
                                              long long tiles) {                                             \
        sum_cols<T>(out, partial, inp, outer, len, inner, seg, splits, tiles);                               \
    }                                                                                                        \
    extern "C" __global__ void sum_partials_##SUF(T* out, const float* partial, long long outer,             \
                                                  long long inner, int splits) {                             \
        sum_partials<T>(out, partial, outer, inner, splits);                                                 \
    }                                                                                                        \
    extern "C" __global__ void sum_squares_partial_##SUF(float* partial, const T* x, long long n, long long seg) { \
        sum_squares_partial<T>(partial, x, n, seg);                                                          \
    }
REDUCE(float, f32)
REDUCE(bf16, bf16)
