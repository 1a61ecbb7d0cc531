// LayerNorm over the last axis, biased variance (the CPU spec: kernels/src/cpu/layernorm.rs),
// its residual-fused forward, and its backward.
//
//   fwd:   mean = sum_c x / C,  var = sum_c (x - mean)^2 / C (two passes, no E[x^2] - E[x]^2),
//          rstd = 1 / sqrt(var + eps),  out = (x - mean) * rstd * gamma + beta
//   res:   sum = x + residual (rounded to T and stored: the backward's input), then fwd on sum
//   bwd:   g = dout * gamma,  dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))   (overwritten)
//          dgamma = sum_r dout * xhat,  dbeta = sum_r dout                         (overwritten)
//
// x, residual, sum, out, dout, dx: [rows, cols] of T; gamma, beta, dgamma, dbeta: [cols] of T;
// mean, rstd: [rows] f32. All math in f32.
//
// Versions (the launcher picks by cols):
// - warp (`_w<V>`): one warp per row, the row in registers (V per lane at columns lane,
//   lane + 32, ...), V in {4, 8, 16, 24, 32} (cols <= 128, 256, 512, 768, 1024).
// - block (`_blk`): one block per row (fwd) or per chunk of rows (bwd), any cols; passes re-read
//   the row from global memory (L1/L2).
//
// dgamma/dbeta are reduced over rows deterministically, with no atomics: the backward kernel
// gives each block a fixed chunk of rows and writes that block's column sums to
// partial[block][2][cols]; `layernorm_dparams` then adds the partials of each column in block
// order. Chunks depend on the shape only, so results are bitwise reproducible on any GPU.

#define LN_WARPS 4       // rows per block in the forward warp versions (128 threads)
#define LN_BWD_WARPS 8   // warps per block in the backward warp versions (256 threads)

// ------------------------------------------------------------------------------------ forward

template <typename T, int V, bool RES>
__device__ __forceinline__ void ln_fwd_warp(T* __restrict__ out, T* __restrict__ sum_out, float* __restrict__ mean,
                                            float* __restrict__ rstd, const T* __restrict__ x,
                                            const T* __restrict__ residual, const T* __restrict__ gamma,
                                            const T* __restrict__ beta, int rows, int cols, float eps) {
    const long long row = (long long)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;  // the whole warp leaves together
    // Row pointers advanced to this lane: the unrolled accesses are base + constant offsets.
    const long long base = row * cols + lane;
    const T* gl = gamma + lane;
    const T* bl = beta + lane;
    float v[V];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        v[k] = 0.0f;
        if (k * 32 + lane < cols) {
            float a = to_f32(x[base + k * 32]);
            if (RES) {
                // Normalise the sum as stored, so the backward (which reads it) sees the same x.
                const T t = from_f32<T>(a + to_f32(residual[base + k * 32]));
                sum_out[base + k * 32] = t;
                a = to_f32(t);
            }
            v[k] = a;
            s += a;
        }
    }
    const float m = warp_sum(s) / (float)cols;
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        if (k * 32 + lane < cols) q += (v[k] - m) * (v[k] - m);
    }
    const float rs = 1.0f / sqrtf(warp_sum(q) / (float)cols + eps);
#pragma unroll
    for (int k = 0; k < V; ++k) {
        if (k * 32 + lane < cols)
            out[base + k * 32] = from_f32<T>((v[k] - m) * rs * to_f32(gl[k * 32]) + to_f32(bl[k * 32]));
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = rs;
    }
}

// One block per row. With RES the first pass writes `sum`, and the later passes read it back:
// each thread re-reads only the columns it wrote itself, so no barrier is needed for that.
template <typename T, bool RES>
__device__ __forceinline__ void ln_fwd_block(T* out, T* sum_out, float* __restrict__ mean, float* __restrict__ rstd,
                                             const T* x, const T* residual, const T* __restrict__ gamma,
                                             const T* __restrict__ beta, int cols, float eps) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const long long base = row * cols;
    const T* src = RES ? (const T*)sum_out : x;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float a = to_f32(x[base + c]);
        if (RES) {
            const T t = from_f32<T>(a + to_f32(residual[base + c]));
            sum_out[base + c] = t;
            a = to_f32(t);
        }
        s += a;
    }
    const float m = block_sum(s, scratch) / (float)cols;
    float q = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float d = to_f32(src[base + c]) - m;
        q += d * d;
    }
    const float rs = 1.0f / sqrtf(block_sum(q, scratch) / (float)cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        out[base + c] = from_f32<T>((to_f32(src[base + c]) - m) * rs * to_f32(gamma[c]) + to_f32(beta[c]));
    if (threadIdx.x == 0) {
        mean[row] = m;
        rstd[row] = rs;
    }
}

// ------------------------------------------------------------------------------------ backward

// Block b takes rows [b * chunk, min((b + 1) * chunk, rows)); warp w of it takes every
// LN_BWD_WARPS-th row of that range from w. Each lane keeps its columns' dgamma/dbeta sums in
// registers; the warps then add theirs into shared memory one warp at a time (a fixed order),
// and the block writes partial[b][0][:] = dgamma sums, partial[b][1][:] = dbeta sums.
// Dynamic shared memory: 2 * cols floats.
template <typename T, int V>
__device__ __forceinline__ void ln_bwd_warp(T* __restrict__ dx, float* __restrict__ partial,
                                            const T* __restrict__ dout, const T* __restrict__ x,
                                            const T* __restrict__ gamma, const float* __restrict__ mean,
                                            const float* __restrict__ rstd, int rows, int cols, int chunk) {
    extern __shared__ float acc[];  // [2][cols]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long r0 = (long long)blockIdx.x * chunk;
    const long long r1 = min(r0 + chunk, (long long)rows);
    const float inv_n = 1.0f / (float)cols;
    float ag[V], ab[V];
#pragma unroll
    for (int k = 0; k < V; ++k) ag[k] = ab[k] = 0.0f;
    const T* gl = gamma + lane;  // this lane's columns are gl[32 k]
    for (long long row = r0 + warp; row < r1; row += LN_BWD_WARPS) {
        // Row pointers advanced to this lane, so the unrolled accesses are base + constant offsets
        // (64-bit addresses per k would cost two registers each).
        const T* gr = dout + row * cols + lane;
        const T* xr = x + row * cols + lane;
        T* dr = dx + row * cols + lane;
        const float m = mean[row], rs = rstd[row];
        // Only xhat stays in registers between the passes (with ag, ab: 3 V floats); the second
        // pass re-reads dout and gamma, from L1.
        float xh[V];
        float sg = 0.0f, sgx = 0.0f;
#pragma unroll
        for (int k = 0; k < V; ++k) {
            xh[k] = 0.0f;
            if (k * 32 + lane < cols) {
                const float go = to_f32(gr[k * 32]);
                xh[k] = (to_f32(xr[k * 32]) - m) * rs;
                const float gg = go * to_f32(gl[k * 32]);
                sg += gg;
                sgx += gg * xh[k];
                ag[k] += go * xh[k];
                ab[k] += go;
            }
        }
        const float mg = warp_sum(sg) * inv_n, mgx = warp_sum(sgx) * inv_n;
#pragma unroll
        for (int k = 0; k < V; ++k) {
            if (k * 32 + lane < cols) {
                const float gg = to_f32(gr[k * 32]) * to_f32(gl[k * 32]);
                dr[k * 32] = from_f32<T>(rs * (gg - mg - xh[k] * mgx));
            }
        }
    }
    for (int w = 0; w < LN_BWD_WARPS; ++w) {
        if (warp == w) {
#pragma unroll
            for (int k = 0; k < V; ++k) {
                const int c = k * 32 + lane;
                if (c < cols) {
                    acc[c] = w == 0 ? ag[k] : acc[c] + ag[k];
                    acc[cols + c] = w == 0 ? ab[k] : acc[cols + c] + ab[k];
                }
            }
        }
        __syncthreads();
    }
    float* pb = partial + (long long)blockIdx.x * 2 * cols;
    for (int c = threadIdx.x; c < 2 * cols; c += blockDim.x) pb[c] = acc[c];
}

// Block b takes rows [b * chunk, min((b + 1) * chunk, rows)) (never empty: the launcher sizes
// the grid so), one row at a time. Thread t owns columns t, t + blockDim, ... in every row, so it
// accumulates their dgamma/dbeta sums straight into the block's partial row in global memory
// (first row stores, later rows add): one writer per element, no atomics.
template <typename T>
__device__ __forceinline__ void ln_bwd_block(T* __restrict__ dx, float* __restrict__ partial,
                                             const T* __restrict__ dout, const T* __restrict__ x,
                                             const T* __restrict__ gamma, const float* __restrict__ mean,
                                             const float* __restrict__ rstd, int rows, int cols, int chunk) {
    __shared__ float scratch[32];
    const long long r0 = (long long)blockIdx.x * chunk;
    const long long r1 = min(r0 + chunk, (long long)rows);
    const float inv_n = 1.0f / (float)cols;
    float* pg = partial + (long long)blockIdx.x * 2 * cols;
    float* pbeta = pg + cols;
    for (long long row = r0; row < r1; ++row) {
        const long long base = row * cols;
        const float m = mean[row], rs = rstd[row];
        float sg = 0.0f, sgx = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float xh = (to_f32(x[base + c]) - m) * rs;
            const float gg = to_f32(dout[base + c]) * to_f32(gamma[c]);
            sg += gg;
            sgx += gg * xh;
        }
        const float mg = block_sum(sg, scratch) * inv_n;
        const float mgx = block_sum(sgx, scratch) * inv_n;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float go = to_f32(dout[base + c]);
            const float xh = (to_f32(x[base + c]) - m) * rs;
            const float gg = go * to_f32(gamma[c]);
            dx[base + c] = from_f32<T>(rs * (gg - mg - xh * mgx));
            pg[c] = row == r0 ? go * xh : pg[c] + go * xh;
            pbeta[c] = row == r0 ? go : pbeta[c] + go;
        }
    }
}

// dgamma[c] = sum_b partial[b][0][c], dbeta[c] = sum_b partial[b][1][c] (overwritten, rounded
// to T once). Block (32, 8): 32 columns; thread row ty sums blocks ty, ty + 8, ... in order,
// then ty = 0 adds the 8 results in order. nparts = 0 writes zeros.
template <typename T>
__device__ __forceinline__ void ln_dparams(T* __restrict__ dgamma, T* __restrict__ dbeta,
                                           const float* __restrict__ partial, int nparts, int cols) {
    __shared__ float red[2][8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    float sg = 0.0f, sb = 0.0f;
    if (c < cols) {
        for (int p = ty; p < nparts; p += 8) {
            const float* pp = partial + (long long)p * 2 * cols;
            sg += pp[c];
            sb += pp[cols + c];
        }
    }
    red[0][ty][tx] = sg;
    red[1][ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && c < cols) {
        float g = 0.0f, b = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            g += red[0][k][tx];
            b += red[1][k][tx];
        }
        dgamma[c] = from_f32<T>(g);
        dbeta[c] = from_f32<T>(b);
    }
}

// ------------------------------------------------------------------------------ instantiations

#define LN_WARP(V, T, S)                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * LN_WARPS)                                           \
        layernorm_fwd_w##V##_##S(T* out, float* mean, float* rstd, const T* x, const T* gamma,            \
                                 const T* beta, int rows, int cols, float eps) {                           \
        ln_fwd_warp<T, V, false>(out, nullptr, mean, rstd, x, nullptr, gamma, beta, rows, cols, eps);     \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(32 * LN_WARPS)                                           \
        layernorm_residual_fwd_w##V##_##S(T* out, T* sum, float* mean, float* rstd, const T* x,           \
                                          const T* residual, const T* gamma, const T* beta, int rows,      \
                                          int cols, float eps) {                                           \
        ln_fwd_warp<T, V, true>(out, sum, mean, rstd, x, residual, gamma, beta, rows, cols, eps);         \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(32 * LN_BWD_WARPS)                                       \
        layernorm_bwd_w##V##_##S(T* dx, float* partial, const T* dout, const T* x, const T* gamma,        \
                                 const float* mean, const float* rstd, int rows, int cols, int chunk) {    \
        ln_bwd_warp<T, V>(dx, partial, dout, x, gamma, mean, rstd, rows, cols, chunk);                     \
    }

#define LN_ALL(T, S)                                                                                       \
    LN_WARP(4, T, S)                                                                                       \
    LN_WARP(8, T, S)                                                                                       \
    LN_WARP(16, T, S)                                                                                      \
    LN_WARP(24, T, S)                                                                                      \
    LN_WARP(32, T, S)                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        layernorm_fwd_blk_##S(T* out, float* mean, float* rstd, const T* x, const T* gamma, const T* beta, \
                              int rows, int cols, float eps) {                                             \
        (void)rows;                                                                                        \
        ln_fwd_block<T, false>(out, nullptr, mean, rstd, x, nullptr, gamma, beta, cols, eps);             \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        layernorm_residual_fwd_blk_##S(T* out, T* sum, float* mean, float* rstd, const T* x,              \
                                       const T* residual, const T* gamma, const T* beta, int rows,         \
                                       int cols, float eps) {                                              \
        (void)rows;                                                                                        \
        ln_fwd_block<T, true>(out, sum, mean, rstd, x, residual, gamma, beta, cols, eps);                 \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        layernorm_bwd_blk_##S(T* dx, float* partial, const T* dout, const T* x, const T* gamma,           \
                              const float* mean, const float* rstd, int rows, int cols, int chunk) {       \
        ln_bwd_block<T>(dx, partial, dout, x, gamma, mean, rstd, rows, cols, chunk);                       \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(256)                                                     \
        layernorm_dparams_##S(T* dgamma, T* dbeta, const float* partial, int nparts, int cols) {           \
        ln_dparams<T>(dgamma, dbeta, partial, nparts, cols);                                               \
    }

LN_ALL(float, f32)
LN_ALL(bf16, bf16)
