// The GPU half of ALBERT's fused factorised embedding (engine/src/ops/embeddings.rs): the three
// row gathers, their sum, LayerNorm(E) and dropout, and the backward of that front. The E x H
// projection is a GEMM the engine runs separately.
//
//   fwd:  x[r, :] = (word[ids[r]] + position[pos_ids[r]]) + token_type[type_ids[r]]     (f32)
//         y = dropout(LN(x; gamma, beta, eps)),  keep iff uniform01(seed, r * E + c) >= p,
//         kept values scaled by keep_scale = 1 / (1 - p); p = 0: no dropout
//   bwd:  dln = keep ? dy * keep_scale : 0;  x and xhat recomputed from the ids and (mean, rstd)
//         dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),  g = dln * gamma
//         dword[ids[r]] += dx (unless ids[r] == padding_idx), dposition[pos_ids[r]] += dx,
//         dtype[type_ids[r]] += dx                           (f32 atomicAdd: order unspecified)
//         dgamma += sum_r dln * xhat,  dbeta += sum_r dln    (deterministic: partials, then add)
//
// y, dy: [R, E] T; word/position/token_type: [rows_of_table, E] T; gamma, beta: [E] T;
// mean, rstd: [R] f32; ids, pos_ids, type_ids: [R] i64; dword/dposition/dtype: f32 tables;
// dgamma, dbeta: [E] f32.
//
// One block of round_up(E, 32) threads (at most 1024) per row; thread t holds columns
// t, t + blockDim, ... in registers (at most EMB_VPT of them, so E <= 4096). A row with an id
// outside [0, *_rows) is never read through: the forward writes NaN mean, rstd and output for it
// (0 where dropped), the backward skips it. (The launchers do not know the table sizes and pass
// INT_MAX, so there only negative ids are caught; the engine validates ids first.)

#define EMB_VPT 4

__device__ __forceinline__ bool emb_ids(const long long* ids, const long long* pos_ids, const long long* type_ids,
                                        long long row, int word_rows, int pos_rows, int type_rows, long long& w,
                                        long long& q, long long& t) {
    w = ids[row];
    q = pos_ids[row];
    t = type_ids[row];
    return w >= 0 && w < word_rows && q >= 0 && q < pos_rows && t >= 0 && t < type_rows;
}

template <typename T>
__device__ __forceinline__ void emb_fwd(T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd,
                                        const T* __restrict__ word, const T* __restrict__ position,
                                        const T* __restrict__ token_type, const long long* __restrict__ ids,
                                        const long long* __restrict__ pos_ids, const long long* __restrict__ type_ids,
                                        const T* __restrict__ gamma, const T* __restrict__ beta, int e, int word_rows,
                                        int pos_rows, int type_rows, float eps, float p, float keep_scale, u64 seed) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    long long w, q, t;
    const bool valid = emb_ids(ids, pos_ids, type_ids, row, word_rows, pos_rows, type_rows, w, q, t);
    float v[EMB_VPT];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < EMB_VPT; ++k) {
        const int c = k * (int)blockDim.x + (int)threadIdx.x;
        v[k] = 0.0f;
        if (valid && c < e) {
            v[k] = (to_f32(word[w * e + c]) + to_f32(position[q * e + c])) + to_f32(token_type[t * e + c]);
            s += v[k];
        }
    }
    const float m = block_sum(s, scratch) / (float)e;
    float d2 = 0.0f;
#pragma unroll
    for (int k = 0; k < EMB_VPT; ++k) {
        if (k * (int)blockDim.x + (int)threadIdx.x < e) d2 += (v[k] - m) * (v[k] - m);
    }
    const float nan = __int_as_float(0x7fffffff);
    const float mu = valid ? m : nan;
    const float var = block_sum(d2, scratch) / (float)e;
    const float rs = valid ? 1.0f / sqrtf(var + eps) : nan;
    T* yr = y + row * e;
#pragma unroll
    for (int k = 0; k < EMB_VPT; ++k) {
        const int c = k * (int)blockDim.x + (int)threadIdx.x;
        if (c < e) {
            float o = (v[k] - mu) * rs * to_f32(gamma[c]) + to_f32(beta[c]);
            if (p > 0.0f) o = uniform01(seed, (u64)(row * e + c)) >= p ? o * keep_scale : 0.0f;
            yr[c] = from_f32<T>(o);
        }
    }
    if (threadIdx.x == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// Block b takes rows [b * chunk, min((b + 1) * chunk, rows)) one at a time; each thread keeps its
// columns' dgamma/dbeta sums in registers over the chunk and writes them to
// partial[b][0][:] / partial[b][1][:] at the end.
template <typename T>
__device__ __forceinline__ void emb_bwd(float* __restrict__ dword, float* __restrict__ dposition,
                                        float* __restrict__ dtype, float* __restrict__ partial,
                                        const T* __restrict__ dy, const T* __restrict__ word,
                                        const T* __restrict__ position, const T* __restrict__ token_type,
                                        const long long* __restrict__ ids, const long long* __restrict__ pos_ids,
                                        const long long* __restrict__ type_ids, const T* __restrict__ gamma,
                                        const float* __restrict__ mean, const float* __restrict__ rstd, int rows,
                                        int e, int word_rows, int pos_rows, int type_rows, int chunk, float p,
                                        float keep_scale, u64 seed, long long padding_idx) {
    __shared__ float scratch[32];
    const long long r0 = (long long)blockIdx.x * chunk;
    const long long r1 = min(r0 + chunk, (long long)rows);
    const float inv_n = 1.0f / (float)e;
    float ag[EMB_VPT], ab[EMB_VPT];
#pragma unroll
    for (int k = 0; k < EMB_VPT; ++k) ag[k] = ab[k] = 0.0f;
    for (long long row = r0; row < r1; ++row) {
        long long w, q, t;
        // The same answer for every thread of the block, so the barriers below stay uniform.
        if (!emb_ids(ids, pos_ids, type_ids, row, word_rows, pos_rows, type_rows, w, q, t)) continue;
        const float m = mean[row], rs = rstd[row];
        float xh[EMB_VPT], gg[EMB_VPT];
        float sg = 0.0f, sgx = 0.0f;
#pragma unroll
        for (int k = 0; k < EMB_VPT; ++k) {
            const int c = k * (int)blockDim.x + (int)threadIdx.x;
            xh[k] = gg[k] = 0.0f;
            if (c < e) {
                const float x = (to_f32(word[w * e + c]) + to_f32(position[q * e + c])) + to_f32(token_type[t * e + c]);
                float go = to_f32(dy[row * e + c]);
                if (p > 0.0f) go = uniform01(seed, (u64)(row * e + c)) >= p ? go * keep_scale : 0.0f;
                xh[k] = (x - m) * rs;
                gg[k] = go * to_f32(gamma[c]);
                sg += gg[k];
                sgx += gg[k] * xh[k];
                ag[k] += go * xh[k];
                ab[k] += go;
            }
        }
        const float mg = block_sum(sg, scratch) * inv_n;
        const float mgx = block_sum(sgx, scratch) * inv_n;
        const bool to_word = w != padding_idx;
#pragma unroll
        for (int k = 0; k < EMB_VPT; ++k) {
            const int c = k * (int)blockDim.x + (int)threadIdx.x;
            if (c < e) {
                const float dx = rs * (gg[k] - mg - xh[k] * mgx);
                if (to_word) atomicAdd(dword + w * e + c, dx);
                atomicAdd(dposition + q * e + c, dx);
                atomicAdd(dtype + t * e + c, dx);
            }
        }
    }
    float* pg = partial + (long long)blockIdx.x * 2 * e;
#pragma unroll
    for (int k = 0; k < EMB_VPT; ++k) {
        const int c = k * (int)blockDim.x + (int)threadIdx.x;
        if (c < e) {
            pg[c] = ag[k];
            pg[e + c] = ab[k];
        }
    }
}

// dgamma[c] += sum_b partial[b][0][c], dbeta[c] += sum_b partial[b][1][c], blocks added in order.
// Block (32, 8): 32 columns; thread row ty sums blocks ty, ty + 8, ..., then ty = 0 adds the 8.
extern "C" __global__ void __launch_bounds__(256)
    embed_ln_dparams(float* __restrict__ dgamma, float* __restrict__ dbeta, const float* __restrict__ partial,
                     int nparts, int e) {
    __shared__ float red[2][8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    float sg = 0.0f, sb = 0.0f;
    if (c < e) {
        for (int b = ty; b < nparts; b += 8) {
            const float* pp = partial + (long long)b * 2 * e;
            sg += pp[c];
            sb += pp[e + c];
        }
    }
    red[0][ty][tx] = sg;
    red[1][ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && c < e) {
        float g = 0.0f, b = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            g += red[0][k][tx];
            b += red[1][k][tx];
        }
        dgamma[c] += g;
        dbeta[c] += b;
    }
}

#define EMB_ALL(T, S)                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) embed_ln_fwd_##S(                                  \
        T* y, float* mean, float* rstd, const T* word, const T* position, const T* token_type,             \
        const long long* ids, const long long* pos_ids, const long long* type_ids, const T* gamma,         \
        const T* beta, int rows, int e, int word_rows, int pos_rows, int type_rows, float eps, float p,    \
        float keep_scale, u64 seed) {                                                                      \
        (void)rows;                                                                                        \
        emb_fwd<T>(y, mean, rstd, word, position, token_type, ids, pos_ids, type_ids, gamma, beta, e,      \
                   word_rows, pos_rows, type_rows, eps, p, keep_scale, seed);                              \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) embed_ln_bwd_##S(                                  \
        float* dword, float* dposition, float* dtype, float* partial, const T* dy, const T* word,          \
        const T* position, const T* token_type, const long long* ids, const long long* pos_ids,            \
        const long long* type_ids, const T* gamma, const float* mean, const float* rstd, int rows, int e,  \
        int word_rows, int pos_rows, int type_rows, int chunk, float p, float keep_scale, u64 seed,        \
        long long padding_idx) {                                                                           \
        emb_bwd<T>(dword, dposition, dtype, partial, dy, word, position, token_type, ids, pos_ids,         \
                   type_ids, gamma, mean, rstd, rows, e, word_rows, pos_rows, type_rows, chunk, p,         \
                   keep_scale, seed, padding_idx);                                                         \
    }

EMB_ALL(float, f32)
EMB_ALL(bf16, bf16)
