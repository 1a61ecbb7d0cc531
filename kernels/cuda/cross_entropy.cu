// Cross-entropy over logits with integer targets, fused log-softmax + NLL (the CPU spec:
// kernels/src/cpu/cross_entropy.rs).
//
//   fwd:    lse[r] = log sum_c exp(logits[r, c]);  row_loss[r] = lse[r] - logits[r, t_r]
//           (0 for a row whose target is `ignore`), then one block adds row_loss in a fixed order:
//           loss_sum = sum_r row_loss[r],  count = #{r : t_r != ignore}
//   bwd:    dlogits[r, c] = s * (exp(logits[r, c] - lse[r]) - [c == t_r]),  s = dloss / count,
//           and 0 for ignored rows (overwritten). dloss and count are read on the device.
//
// logits, dlogits: [rows, cols] T; lse, row_loss: [rows] f32; targets: [rows] i64;
// loss_sum, count, dloss: [1] f32.
//
// One block per row. The forward reads the row once, keeping a running (max, sum of exp) per
// thread: each 16-byte chunk (4 f32 or 8 bf16, when the launcher sets vec16) is folded in with one
// rescale. The block then combines the threads' pairs. A row of all -inf (or with a NaN or +inf)
// gives lse = NaN, as the CPU reference's max-then-sum does. A target outside [0, cols) that is not
// `ignore` is never read: its row loss is NaN (and it is counted), and the backward skips its
// one-hot term.

#define CE_NEG_INF __int_as_float(0xff800000)
#define CE_NAN __int_as_float(0x7fffffff)

// 16 bytes <-> 16 / sizeof(T) floats (element 0 in the low bits, as in memory).
__device__ __forceinline__ void ce_unpack(uint4 u, float (&v)[4]) {
    v[0] = __uint_as_float(u.x);
    v[1] = __uint_as_float(u.y);
    v[2] = __uint_as_float(u.z);
    v[3] = __uint_as_float(u.w);
}
__device__ __forceinline__ void ce_unpack(uint4 u, float (&v)[8]) {
    const u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        v[2 * j] = __uint_as_float(w[j] << 16);
        v[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
}
__device__ __forceinline__ uint4 ce_pack(const float (&v)[4]) {
    return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
}
__device__ __forceinline__ uint4 ce_pack(const float (&v)[8]) {
    return make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]),
                      pack_bf16x2(v[6], v[7]));
}

// Folds the N values v (whose max is vmax) into the running (m, s = sum exp(. - m)).
template <int N>
__device__ __forceinline__ void ce_fold(float& m, float& s, const float (&v)[N], float vmax) {
    const float mn = fmaxf(m, vmax);
    if (mn == CE_NEG_INF) {
        // Everything so far is -inf or NaN (fmaxf skips NaN): keep a NaN, add nothing for -inf.
#pragma unroll
        for (int j = 0; j < N; ++j)
            if (v[j] != CE_NEG_INF) s = CE_NAN;
        return;
    }
    if (s != 0.0f && m != mn) s *= expf(m - mn);  // s = 0 means m = -inf: nothing to rescale
#pragma unroll
    for (int j = 0; j < N; ++j) s += expf(v[j] - mn);
    m = mn;
}

template <typename T>
__device__ __forceinline__ void ce_fwd_row(float* __restrict__ lse, float* __restrict__ row_loss,
                                           const T* __restrict__ logits, const long long* __restrict__ targets,
                                           int cols, long long ignore, int vec16) {
    constexpr int N = 16 / sizeof(T);
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* xr = logits + row * cols;
    float m = CE_NEG_INF, s = 0.0f;
    if (vec16) {
        const uint4* p = (const uint4*)xr;
        const int units = cols / N;
        for (int i = threadIdx.x; i < units; i += blockDim.x) {
            float v[N];
            ce_unpack(p[i], v);
            float vmax = v[0];
#pragma unroll
            for (int j = 1; j < N; ++j) vmax = fmaxf(vmax, v[j]);
            ce_fold<N>(m, s, v, vmax);
        }
    } else {
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float v[1] = {to_f32(xr[c])};
            ce_fold<1>(m, s, v, v[0]);
        }
    }
    const float row_max = block_max(m, scratch);
    // s == 0: this thread saw only -inf; it adds 0 (and no exp(-inf - -inf)).
    const float sum = block_sum(s == 0.0f ? 0.0f : s * expf(m - row_max), scratch);
    if (threadIdx.x == 0) {
        const float l = row_max == CE_NEG_INF ? CE_NAN : row_max + logf(sum);
        lse[row] = l;
        const long long t = targets[row];
        float loss = 0.0f;
        if (t != ignore) loss = (t >= 0 && t < cols) ? l - to_f32(xr[t]) : CE_NAN;
        row_loss[row] = loss;
    }
}

// One block of CE_REDUCE_THREADS: thread i adds rows i, i + CE_REDUCE_THREADS, ... in f64, then
// a fixed shuffle tree and the warps' results in warp order. Bitwise reproducible.
#define CE_REDUCE_THREADS 1024

__device__ __forceinline__ double ce_shfl_xor_f64(double v, int o) {
    const int lo = __shfl_xor_sync(0xffffffffu, __double2loint(v), o);
    const int hi = __shfl_xor_sync(0xffffffffu, __double2hiint(v), o);
    return __hiloint2double(hi, lo);
}

extern "C" __global__ void __launch_bounds__(CE_REDUCE_THREADS)
    cross_entropy_reduce(float* __restrict__ loss_sum, float* __restrict__ count, const float* __restrict__ row_loss,
                         const long long* __restrict__ targets, int rows, long long ignore) {
    __shared__ double part_loss[32];
    __shared__ int part_count[32];
    double acc = 0.0;
    int cnt = 0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        acc += (double)row_loss[r];
        cnt += targets[r] != ignore ? 1 : 0;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        acc += ce_shfl_xor_f64(acc, o);
        cnt += __shfl_xor_sync(0xffffffffu, cnt, o);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        part_loss[warp] = acc;
        part_count[warp] = cnt;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        int n = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); ++w) {
            total += part_loss[w];
            n += part_count[w];
        }
        loss_sum[0] = (float)total;
        count[0] = (float)n;
    }
}

template <typename T>
__device__ __forceinline__ void ce_bwd_row(T* __restrict__ dlogits, const T* __restrict__ logits,
                                           const float* __restrict__ lse, const long long* __restrict__ targets,
                                           int cols, long long ignore, const float* __restrict__ dloss,
                                           const float* __restrict__ count, int vec16) {
    constexpr int N = 16 / sizeof(T);
    const long long row = blockIdx.x;
    const T* xr = logits + row * cols;
    T* dr = dlogits + row * cols;
    const long long t = targets[row];
    const bool skip = t == ignore;
    const float scale = skip ? 0.0f : dloss[0] / count[0];
    const float l = lse[row];
    if (vec16) {
        const uint4* p = (const uint4*)xr;
        uint4* q = (uint4*)dr;
        const int units = cols / N;
        for (int i = threadIdx.x; i < units; i += blockDim.x) {
            float v[N];
            if (skip) {
#pragma unroll
                for (int j = 0; j < N; ++j) v[j] = 0.0f;
            } else {
                ce_unpack(p[i], v);
#pragma unroll
                for (int j = 0; j < N; ++j) {
                    v[j] = scale * expf(v[j] - l);
                    if ((long long)i * N + j == t) v[j] -= scale;
                }
            }
            q[i] = ce_pack(v);
        }
    } else {
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float d = 0.0f;
            if (!skip) {
                d = scale * expf(to_f32(xr[c]) - l);
                if (c == t) d -= scale;
            }
            dr[c] = from_f32<T>(d);
        }
    }
}

#define CE_ALL(T, S)                                                                                       \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        cross_entropy_fwd_##S(float* lse, float* row_loss, const T* logits, const long long* targets,     \
                              int rows, int cols, long long ignore, int vec16) {                           \
        (void)rows;                                                                                        \
        ce_fwd_row<T>(lse, row_loss, logits, targets, cols, ignore, vec16);                                \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024)                                                    \
        cross_entropy_bwd_##S(T* dlogits, const T* logits, const float* lse, const long long* targets,    \
                              int rows, int cols, long long ignore, const float* dloss, const float* count, \
                              int vec16) {                                                                 \
        (void)rows;                                                                                        \
        ce_bwd_row<T>(dlogits, logits, lse, targets, cols, ignore, dloss, count, vec16);                   \
    }

CE_ALL(float, f32)
CE_ALL(bf16, bf16)
