// Softmax over the last axis fused with a scale and an optional additive mask, and its backward
// (the CPU spec: kernels/src/cpu/softmax.rs).
//
//   fwd: y[r, c] = exp(z[r, c] - max_r) / sum_c exp(z[r, c] - max_r),  z = scale * x + mask
//   bwd: dx[r, c] = scale * y[r, c] * (dy[r, c] - sum_c' dy[r, c'] y[r, c'])
//
// x, y, dy, dx: [rows, cols]; mask: [rows / rows_per_mask, cols] (null = no mask): mask row
// r / rows_per_mask serves row r. Storage T (float or bf16), all math in f32.
//
// Versions (the launcher picks by cols):
// - warp (`_w<V>`): one warp per row, the row held in registers, V values per lane at columns
//   lane, lane + 32, ... (each load instruction is one coalesced 32-lane access); cols <= 32 V.
//   Instantiated for V in {4, 8, 16, 24, 32} (cols <= 128, 256, 512, 768, 1024).
// - block (`_blk`): one block per row, any cols. fwd: one pass keeping a running (max, sum of
//   exp) per thread, then a pass that recomputes z and writes y (the row is read twice, the
//   second time mostly from L2). bwd: a dot-product pass then a write pass.
//
// Special rows behave as the CPU reference: a row whose z are all -inf gives NaN everywhere
// (exp(-inf - -inf)); a row masked with f32::MIN is ordinary finite arithmetic; a NaN input makes
// its whole row NaN.

#define SM_NEG_INF __int_as_float(0xff800000)
#define SM_WARPS 4  // warps (rows) per block in the warp versions; the launcher uses 32 * SM_WARPS threads

template <typename T>
__device__ __forceinline__ float sm_z(const T* xr, const T* mr, int c, float scale) {
    float v = scale * to_f32(xr[c]);
    if (mr != nullptr) v += to_f32(mr[c]);
    return v;
}

// ------------------------------------------------------------------------------- warp versions

template <typename T, int V>
__device__ __forceinline__ void softmax_fwd_warp(T* __restrict__ y, const T* __restrict__ x,
                                                 const T* __restrict__ mask, int rows, int cols,
                                                 int rows_per_mask, float scale) {
    const long long row = (long long)blockIdx.x * SM_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;  // the whole warp leaves together
    // Row pointers advanced to this lane: the unrolled accesses are then one base register plus
    // constant offsets (a 64-bit address per k would cost two registers each).
    const T* xr = x + row * cols + lane;
    const T* mr = mask != nullptr ? mask + (row / rows_per_mask) * cols + lane : nullptr;
    float z[V];
    float mx = SM_NEG_INF;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        z[k] = k * 32 + lane < cols ? sm_z(xr, mr, k * 32, scale) : SM_NEG_INF;
        mx = fmaxf(mx, z[k]);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        if (k * 32 + lane < cols) {
            z[k] = expf(z[k] - mx);
            sum += z[k];
        }
    }
    const float inv = 1.0f / warp_sum(sum);
    T* yr = y + row * cols + lane;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        if (k * 32 + lane < cols) yr[k * 32] = from_f32<T>(z[k] * inv);
    }
}

template <typename T, int V>
__device__ __forceinline__ void softmax_bwd_warp(T* __restrict__ dx, const T* __restrict__ y,
                                                 const T* __restrict__ dy, int rows, int cols, float scale) {
    const long long row = (long long)blockIdx.x * SM_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const T* yr = y + row * cols + lane;
    const T* gr = dy + row * cols + lane;
    float yv[V], gv[V];
    float dot = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        const bool in = k * 32 + lane < cols;
        yv[k] = in ? to_f32(yr[k * 32]) : 0.0f;
        gv[k] = in ? to_f32(gr[k * 32]) : 0.0f;
        dot += yv[k] * gv[k];
    }
    dot = warp_sum(dot);
    T* dr = dx + row * cols + lane;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        if (k * 32 + lane < cols) dr[k * 32] = from_f32<T>(scale * yv[k] * (gv[k] - dot));
    }
}

// ------------------------------------------------------------------------------ block versions

// Folds v into a running (max m, sum s of exp(. - m)). -inf entries add exactly 0 and never form
// exp(-inf - -inf); a NaN entry turns s into NaN (as the CPU's sum does).
__device__ __forceinline__ void sm_online_add(float& m, float& s, float v) {
    if (v > m) {
        s = s * expf(m - v) + 1.0f;  // m = -inf: s * 0 (s is 0 or NaN)
        m = v;
    } else if (v != SM_NEG_INF) {
        s += expf(v - m);
    }
}

template <typename T>
__device__ __forceinline__ void softmax_fwd_block(T* __restrict__ y, const T* __restrict__ x,
                                                  const T* __restrict__ mask, int cols, int rows_per_mask,
                                                  float scale) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    const T* mr = mask != nullptr ? mask + (row / rows_per_mask) * cols : nullptr;
    float m = SM_NEG_INF, s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sm_online_add(m, s, sm_z(xr, mr, c, scale));
    const float row_max = block_max(m, scratch);
    // Rescale to the row max. s == 0 (nothing but -inf seen) adds 0 and skips exp(-inf - -inf).
    const float sum = block_sum(s == 0.0f ? 0.0f : s * expf(m - row_max), scratch);
    const float inv = 1.0f / sum;
    T* yr = y + row * cols;
    // All -inf: row_max = -inf and exp(NaN) * inf = NaN, the reference's answer.
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        yr[c] = from_f32<T>(expf(sm_z(xr, mr, c, scale) - row_max) * inv);
}

template <typename T>
__device__ __forceinline__ void softmax_bwd_block(T* __restrict__ dx, const T* __restrict__ y,
                                                  const T* __restrict__ dy, int cols, float scale) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* yr = y + row * cols;
    const T* gr = dy + row * cols;
    float dot = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += to_f32(yr[c]) * to_f32(gr[c]);
    dot = block_sum(dot, scratch);
    T* dr = dx + row * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float yv = to_f32(yr[c]);
        dr[c] = from_f32<T>(scale * yv * (to_f32(gr[c]) - dot));
    }
}

// ------------------------------------------------------------------------------ instantiations

#define SOFTMAX_WARP(V, T, S)                                                                              \
    extern "C" __global__ void __launch_bounds__(32 * SM_WARPS)                                           \
        softmax_fwd_w##V##_##S(T* y, const T* x, const T* mask, int rows, int cols, int rows_per_mask,     \
                               float scale) {                                                              \
        softmax_fwd_warp<T, V>(y, x, mask, rows, cols, rows_per_mask, scale);                              \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(32 * SM_WARPS)                                           \
        softmax_bwd_w##V##_##S(T* dx, const T* y, const T* dy, int rows, int cols, float scale) {          \
        softmax_bwd_warp<T, V>(dx, y, dy, rows, cols, scale);                                              \
    }

#define SOFTMAX_ALL(T, S)                                                                                  \
    SOFTMAX_WARP(4, T, S)                                                                                  \
    SOFTMAX_WARP(8, T, S)                                                                                  \
    SOFTMAX_WARP(16, T, S)                                                                                 \
    SOFTMAX_WARP(24, T, S)                                                                                 \
    SOFTMAX_WARP(32, T, S)                                                                                 \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        softmax_fwd_blk_##S(T* y, const T* x, const T* mask, int rows, int cols, int rows_per_mask,        \
                            float scale) {                                                                 \
        (void)rows;                                                                                        \
        softmax_fwd_block<T>(y, x, mask, cols, rows_per_mask, scale);                                      \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        softmax_bwd_blk_##S(T* dx, const T* y, const T* dy, int rows, int cols, float scale) {             \
        (void)rows;                                                                                        \
        softmax_bwd_block<T>(dx, y, dy, cols, scale);                                                      \
    }

SOFTMAX_ALL(float, f32)
SOFTMAX_ALL(bf16, bf16)
