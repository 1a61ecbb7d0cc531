// Fused attention (FlashAttention-2 style): O = softmax(scale * Q K^T + mask) V without ever
// writing the [B, N, S_q, S_k] scores to global memory, and its backward.
//
// Versions:
//   mma  (bf16 only): tensor cores through inline PTX -- mma.sync.m16n8k16 bf16 with f32
//        accumulators, ldmatrix fragment loads from XOR-swizzled shared tiles, cp.async
//        double-buffered tiles. The launcher picks it for bf16 when every pointer is 16-byte
//        aligned and every stride a multiple of 8 elements (16-byte rows for cp.async).
//   simt (f32 and bf16): plain f32 FMAs, one warp per row, lanes over keys (scores) and over d
//        (outputs). The f32 path, and the bf16 fallback for unaligned views.
//
// Addressing: element (b, h, s, d) of a tensor is at ptr + b*bs + h*hs + s*rs + d (d contiguous),
// so [B,S,N,D] projections and [B,N,S,D] tensors are both read in place.
//
// Softmax semantics (kernels/src/cpu/softmax.rs): z = scale * q.k + mask[b, key], then
// exp(z - max) / sum. A key mask of the dtype's minimum (HF's padding value) absorbs the score in
// f32, so a fully masked row has all z equal and its softmax is uniform. To keep that row's
// statistics finite we subtract mu_b = max_k mask[b, k] from every z (mu_b = 0 as soon as one key
// of batch row b has mask 0, i.e. for every row that attends to anything): the probabilities are
// unchanged (a constant shift per row), and lse is the log-sum-exp of z - mu_b. Without that shift,
// lse = -3.4e38 + log(S_k) would round to -3.4e38 and the backward would recompute P = 1, not 1/S_k.
//
// lse: f32 [B, N, S_q], natural log. Dd (backward scratch): f32 [B, N, S_q] = rowsum(dO * O).
// dq_acc (backward scratch, mma path): f32 [B, N, S_q, D], zeroed by the preprocessing kernel,
// accumulated with atomics (so dQ's summation order is not deterministic), then scaled and
// converted into dq by attention_dq_convert.

#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f
#define ATTN_NEG_INF __int_as_float(0xff800000)

extern __shared__ __align__(128) unsigned char attn_smem[];

// ---------------------------------------------------------------------------------------------
// Shared helpers.

// mu_b = max_k mask[k] over one batch row (0 without a mask). Whole block; ends synchronised.
__device__ __forceinline__ float mask_row_max(const float* mrow, int s_k, float* scratch) {
    if (mrow == nullptr) return 0.0f;
    float mx = ATTN_NEG_INF;
    for (int j = threadIdx.x; j < s_k; j += blockDim.x) mx = fmaxf(mx, mrow[j]);
    const float r = block_max(mx, scratch);
    __syncthreads();  // scratch is free again for a later reduction
    return r;
}

// The shifted, masked score z - mu in natural-log units (see the file comment).
__device__ __forceinline__ float masked_score(float dot, float scale, float mk, float mu) {
    return fmaf(dot, scale, mk) - mu;
}

// ---------------------------------------------------------------------------------------------
// PTX wrappers for the tensor-core path.

__device__ __forceinline__ u32 smem_u32(const void* p) { return (u32)__cvta_generic_to_shared(p); }

// 16 bytes global -> shared; when !pred nothing is read and the 16 bytes are zero-filled.
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, bool pred) {
    const int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async4(u32 dst, const void* src, bool pred) {
    const int n = pred ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lane l gives the row address of matrix l/8, register i gets matrix i.
__device__ __forceinline__ void ldsm_x4(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
// Same, each matrix transposed on the way (lane gets column elements).
__device__ __forceinline__ void ldsm_x4_t(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// c += a * b: a 16x16 bf16 (row), b 16x8 bf16 (col), c 16x8 f32.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats to packed bf16 (round to nearest even), `lo` in the low half: one cvt instruction.
__device__ __forceinline__ u32 pack_bf16x2_rn(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// 2^x; results below 2^-126 flush to 0 (irrelevant next to the row maximum's 1).
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// Element offset of 16-byte chunk c of row r in a [rows][CH*8] bf16 shared tile. The chunk index
// is XORed with bits of the row so that the 8 rows an ldmatrix phase reads (same logical chunk,
// 8 consecutive rows starting at a multiple of 8) fall in 8 different 16-byte bank groups.
template <int CH> __device__ __forceinline__ int swz(int r, int c) {
    static_assert(CH == 4 || CH == 8 || CH == 16, "tile rows of 64, 128 or 256 bytes");
    const int x = CH == 4 ? ((r >> 1) & 3) : (r & 7);
    return r * (CH * 8) + ((c ^ x) << 3);
}

// The A fragment (16 rows x 16 of k) at rows r0.., k-chunk pair kk of a swizzled [rows][CH*8] tile.
template <int CH> __device__ __forceinline__ void ldsm_a(u32 (&a)[4], const bf16* tile, int r0, int kk, int lane) {
    const int r = r0 + (lane & 7) + 8 * ((lane >> 3) & 1);
    ldsm_x4(a, smem_u32(tile + swz<CH>(r, kk * 2 + (lane >> 4))));
}

// Rows [row0, row0 + ROWS) x D of a strided bf16 tensor into a swizzled tile, asynchronously.
// Rows at or past `nrows` are zero-filled (never read).
template <int ROWS, int D, int NT>
__device__ __forceinline__ void load_tile_async(bf16* dst, const bf16* src, i64 row_stride, int row0, int nrows) {
    constexpr int CH = D / 8, TOTAL = ROWS * CH;
#pragma unroll
    for (int it = 0; it < (TOTAL + NT - 1) / NT; ++it) {
        const int i = it * NT + (int)threadIdx.x;
        if (TOTAL % NT == 0 || i < TOTAL) {
            const int r = i / CH, c = i % CH;
            const int gr = row0 + r;
            const bool ok = gr < nrows;
            const bf16* s = ok ? src + (i64)gr * row_stride + c * 8 : src;
            cp_async16(smem_u32(dst + swz<CH>(r, c)), s, ok);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward, tensor cores (bf16). One block = BM = 16*MT*NW query rows of one (b, h); each warp owns
// 16*MT consecutive rows. Key/value tiles of BN rows are double-buffered with cp.async. Q's mma A
// fragments stay in registers (QREG) or are re-read from the Q tile each key tile where registers
// are short; S = Q K^T and O += P V run on mma.sync; the online softmax works on the S
// accumulators in place (log2 domain, ex2). O is staged through the Q tile for 16-byte coalesced
// stores.
//
// Shared memory (all dynamic, so the launcher's size is the whole block's): Q [BM][D],
// K [2][BN][D], V [2][BN][D] (bf16), then 32 f32 of reduction scratch. Must match
// fwd_mma_config() in attention.rs.
template <int D> struct FwdMmaCfg;
template <> struct FwdMmaCfg<32> { static constexpr int MT = 2, BN = 64, NW = 4; static constexpr bool QREG = true; };
template <> struct FwdMmaCfg<64> { static constexpr int MT = 2, BN = 64, NW = 4; static constexpr bool QREG = false; };
template <> struct FwdMmaCfg<128> { static constexpr int MT = 1, BN = 64, NW = 8; static constexpr bool QREG = true; };

template <int D>
__device__ __forceinline__ void attn_fwd_mma(const bf16* __restrict__ q, i64 q_bs, i64 q_hs, i64 q_rs,
                                             const bf16* __restrict__ k, i64 k_bs, i64 k_hs, i64 k_rs,
                                             const bf16* __restrict__ v, i64 v_bs, i64 v_hs, i64 v_rs,
                                             const float* __restrict__ mask, bf16* __restrict__ o, i64 o_bs,
                                             i64 o_hs, i64 o_rs, float* __restrict__ lse, int n_heads, int s_q,
                                             int s_k, float scale) {
    constexpr int MT = FwdMmaCfg<D>::MT, BN = FwdMmaCfg<D>::BN, NW = FwdMmaCfg<D>::NW;
    constexpr bool QREG = FwdMmaCfg<D>::QREG;
    constexpr int NT = NW * 32, BM = 16 * MT * NW, CH = D / 8, KD = D / 16, ND = D / 8, NB = BN / 8;
    bf16* sQ = reinterpret_cast<bf16*>(attn_smem);
    bf16* sK = sQ + BM * D;
    bf16* sV = sK + 2 * BN * D;
    float* scratch = reinterpret_cast<float*>(sV + 2 * BN * D);  // [32], for the mask's max

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;  // mma fragment row group and column pair
    const int q0 = blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z;
    const bf16* qb = q + (i64)b * q_bs + (i64)h * q_hs;
    const bf16* kb = k + (i64)b * k_bs + (i64)h * k_hs;
    const bf16* vb = v + (i64)b * v_bs + (i64)h * v_hs;
    const float* mrow = mask ? mask + (i64)b * s_k : nullptr;

    load_tile_async<BM, D, NT>(sQ, qb, q_rs, q0, s_q);
    load_tile_async<BN, D, NT>(sK, kb, k_rs, 0, s_k);
    load_tile_async<BN, D, NT>(sV, vb, v_rs, 0, s_k);
    cp_async_commit();
    const float mu = mask_row_max(mrow, s_k, scratch);  // overlaps the loads in flight
    const float scale_log2 = scale * ATTN_LOG2E;

    u32 qa[QREG ? MT : 1][QREG ? KD : 1][4];
    float acc[MT][ND][4];
    float row_max[MT][2], row_sum[MT][2];  // log2 domain; row_sum is this thread's partial sum
#pragma unroll
    for (int i = 0; i < MT; ++i) {
#pragma unroll
        for (int n = 0; n < ND; ++n) acc[i][n][0] = acc[i][n][1] = acc[i][n][2] = acc[i][n][3] = 0.0f;
        row_max[i][0] = row_max[i][1] = ATTN_NEG_INF;
        row_sum[i][0] = row_sum[i][1] = 0.0f;
    }

    const int n_kt = (s_k + BN - 1) / BN;
    for (int kt = 0; kt < n_kt; ++kt) {
        const int buf = kt & 1;
        if (kt + 1 < n_kt) {
            // The other buffer was last read in iteration kt-1, which ended with __syncthreads.
            load_tile_async<BN, D, NT>(sK + (buf ^ 1) * BN * D, kb, k_rs, (kt + 1) * BN, s_k);
            load_tile_async<BN, D, NT>(sV + (buf ^ 1) * BN * D, vb, v_rs, (kt + 1) * BN, s_k);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* tK = sK + buf * BN * D;
        const bf16* tV = sV + buf * BN * D;

        if (QREG && kt == 0) {
#pragma unroll
            for (int i = 0; i < (QREG ? MT : 0); ++i)
#pragma unroll
                for (int kk = 0; kk < KD; ++kk) ldsm_a<CH>(qa[i][kk], sQ, warp * 16 * MT + i * 16, kk, lane);
        }

        // S = Q K^T for this warp's rows and the BN keys of the tile.
        float s[MT][NB][4];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NB; ++j) s[i][j][0] = s[i][j][1] = s[i][j][2] = s[i][j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
            u32 af[MT][4];
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                if (QREG) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) af[i][e] = qa[QREG ? i : 0][QREG ? kk : 0][e];
                } else {
                    ldsm_a<CH>(af[i], sQ, warp * 16 * MT + i * 16, kk, lane);
                }
            }
#pragma unroll
            for (int jn = 0; jn < BN / 16; ++jn) {
                u32 kf[4];
                const int r = jn * 16 + (lane & 7) + 8 * (lane >> 4);
                ldsm_x4(kf, smem_u32(tK + swz<CH>(r, kk * 2 + ((lane >> 3) & 1))));
#pragma unroll
                for (int i = 0; i < MT; ++i) {
                    mma_bf16(s[i][2 * jn], af[i], kf[0], kf[1]);
                    mma_bf16(s[i][2 * jn + 1], af[i], kf[2], kf[3]);
                }
            }
        }

        // Scores to the log2 domain; keys past s_k do not exist (-inf, weight exactly 0).
        const int key0 = kt * BN;
#pragma unroll
        for (int j = 0; j < NB; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = key0 + j * 8 + 2 * t + e;
                const bool valid = col < s_k;
                const float mk = (mrow != nullptr && valid) ? mrow[col] : 0.0f;
#pragma unroll
                for (int i = 0; i < MT; ++i)
#pragma unroll
                    for (int hf = 0; hf < 2; ++hf) {
                        const float x = s[i][j][2 * hf + e];
                        const float z = mrow != nullptr ? masked_score(x, scale, mk, mu) * ATTN_LOG2E : x * scale_log2;
                        s[i][j][2 * hf + e] = valid ? z : ATTN_NEG_INF;
                    }
            }

        // Online softmax: new row max (over the quad that shares a row), rescale, exponentiate.
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                float mx = row_max[i][hf];
#pragma unroll
                for (int j = 0; j < NB; ++j) mx = fmaxf(mx, fmaxf(s[i][j][2 * hf], s[i][j][2 * hf + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                // A row with no finite score yet keeps weight 0 instead of exp(-inf - -inf) = NaN.
                const float m_use = mx == ATTN_NEG_INF ? 0.0f : mx;
                const float alpha = exp2_ftz(row_max[i][hf] - m_use);
                row_max[i][hf] = mx;
                float sum = 0.0f;
#pragma unroll
                for (int j = 0; j < NB; ++j) {
                    const float p0 = exp2_ftz(s[i][j][2 * hf] - m_use);
                    const float p1 = exp2_ftz(s[i][j][2 * hf + 1] - m_use);
                    s[i][j][2 * hf] = p0;
                    s[i][j][2 * hf + 1] = p1;
                    sum += p0 + p1;
                }
                row_sum[i][hf] = row_sum[i][hf] * alpha + sum;
#pragma unroll
                for (int n = 0; n < ND; ++n) {
                    acc[i][n][2 * hf] *= alpha;
                    acc[i][n][2 * hf + 1] *= alpha;
                }
            }

        // O += P V: the S accumulators of two adjacent key n-tiles are one A fragment (bf16).
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            u32 pa[MT][4];
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                pa[i][0] = pack_bf16x2_rn(s[i][2 * kk][0], s[i][2 * kk][1]);
                pa[i][1] = pack_bf16x2_rn(s[i][2 * kk][2], s[i][2 * kk][3]);
                pa[i][2] = pack_bf16x2_rn(s[i][2 * kk + 1][0], s[i][2 * kk + 1][1]);
                pa[i][3] = pack_bf16x2_rn(s[i][2 * kk + 1][2], s[i][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dn = 0; dn < D / 16; ++dn) {
                u32 vf[4];
                const int r = kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
                ldsm_x4_t(vf, smem_u32(tV + swz<CH>(r, dn * 2 + (lane >> 4))));
#pragma unroll
                for (int i = 0; i < MT; ++i) {
                    mma_bf16(acc[i][2 * dn], pa[i], vf[0], vf[1]);
                    mma_bf16(acc[i][2 * dn + 1], pa[i], vf[2], vf[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with this buffer before it is refilled
    }

    // Normalise, write lse, stage O (bf16) in this warp's own rows of the Q tile.
    float* lse_bh = lse + ((i64)b * n_heads + h) * s_q;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            float l = row_sum[i][hf];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const float inv = 1.0f / l;  // l = 0 only for a row of -inf scores: NaN, as the reference
            const float m = row_max[i][hf] == ATTN_NEG_INF ? 0.0f : row_max[i][hf];
            const int r_local = warp * 16 * MT + i * 16 + g + 8 * hf;
            const int row = q0 + r_local;
            if (t == 0 && row < s_q) lse_bh[row] = (m + log2f(l)) * ATTN_LN2;
#pragma unroll
            for (int n = 0; n < ND; ++n) {
                const int col = n * 8 + 2 * t;
                *reinterpret_cast<u32*>(sQ + swz<CH>(r_local, col >> 3) + (col & 7)) =
                    pack_bf16x2_rn(acc[i][n][2 * hf] * inv, acc[i][n][2 * hf + 1] * inv);
            }
        }
    __syncwarp();
    bf16* ob = o + (i64)b * o_bs + (i64)h * o_hs;
    static_assert((16 * MT * CH) % 32 == 0, "whole warp passes");
#pragma unroll
    for (int it = 0; it < 16 * MT * CH / 32; ++it) {
        const int idx = it * 32 + lane;
        const int r = idx / CH, c = idx % CH;
        const int r_local = warp * 16 * MT + r;
        const int row = q0 + r_local;
        if (row < s_q)
            *reinterpret_cast<uint4*>(ob + (i64)row * o_rs + c * 8) =
                *reinterpret_cast<const uint4*>(sQ + swz<CH>(r_local, c));
    }
}

// ---------------------------------------------------------------------------------------------
// Backward, tensor cores (bf16). One block = BN = 16*NW keys of one (b, h); each warp owns 16
// keys and keeps their dK, dV in registers. The block walks the queries in tiles of BMQ rows
// (Q, dO, lse, Dd double-buffered), working in the transposed view:
//   S^T = K_w Q^T, P^T = exp(S^T - lse), dP^T = V_w dO^T, dS^T = P^T (dP^T - Dd)
//   dV_w += P^T dO,  dK_w += dS^T Q          (A operands straight from the accumulators)
//   dQ   += dS K     (dS^T goes through shared memory; f32 atomics into dq_acc)
// dK is scaled at the end; dQ's scale is applied by attention_dq_convert.
//
// Shared memory: K [BN][D], V [BN][D], Q [2][BMQ][D], dO [2][BMQ][D], dS^T [BN][BMQ] (bf16), then
// lse [2][BMQ], Dd [2][BMQ] and 32 of scratch (f32). Must match bwd_mma_config() in attention.rs.
template <int D> struct BwdMmaCfg;
template <> struct BwdMmaCfg<32> { static constexpr int BMQ = 64, NW = 8; static constexpr bool KVREG = true; };
template <> struct BwdMmaCfg<64> { static constexpr int BMQ = 64, NW = 8; static constexpr bool KVREG = true; };
template <> struct BwdMmaCfg<128> { static constexpr int BMQ = 32, NW = 8; static constexpr bool KVREG = false; };

template <int D>
__device__ __forceinline__ void attn_bwd_mma(const bf16* __restrict__ q, i64 q_bs, i64 q_hs, i64 q_rs,
                                             const bf16* __restrict__ k, i64 k_bs, i64 k_hs, i64 k_rs,
                                             const bf16* __restrict__ v, i64 v_bs, i64 v_hs, i64 v_rs,
                                             const bf16* __restrict__ dout, i64 do_bs, i64 do_hs, i64 do_rs,
                                             const float* __restrict__ mask, const float* __restrict__ lse,
                                             const float* __restrict__ dd, float* __restrict__ dq_acc,
                                             bf16* __restrict__ dk, i64 dk_bs, i64 dk_hs, i64 dk_rs,
                                             bf16* __restrict__ dv, i64 dv_bs, i64 dv_hs, i64 dv_rs, int n_heads,
                                             int s_q, int s_k, float scale) {
    constexpr int BMQ = BwdMmaCfg<D>::BMQ, NW = BwdMmaCfg<D>::NW;
    constexpr bool KVREG = BwdMmaCfg<D>::KVREG;
    constexpr int NT = NW * 32, BN = 16 * NW, CH = D / 8, CHS = BMQ / 8, KD = D / 16, ND = D / 8, NQ = BMQ / 8;
    // dQ tile [BMQ x D] split over warps: MQ row tiles of 16, each shared by WM warps along d.
    constexpr int MQ = BMQ / 16, WM = NW / MQ, NDW = ND / WM;
    static_assert(NW % MQ == 0 && NDW % 2 == 0, "dQ warp tiling");
    bf16* sK = reinterpret_cast<bf16*>(attn_smem);
    bf16* sV = sK + BN * D;
    bf16* sQ = sV + BN * D;
    bf16* sdO = sQ + 2 * BMQ * D;
    bf16* sdS = sdO + 2 * BMQ * D;
    float* sLse = reinterpret_cast<float*>(sdS + BN * BMQ);
    float* sDd = sLse + 2 * BMQ;
    float* scratch = sDd + 2 * BMQ;  // [32]

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int k0 = blockIdx.x * BN, h = blockIdx.y, b = blockIdx.z;
    const bf16* qb = q + (i64)b * q_bs + (i64)h * q_hs;
    const bf16* kb = k + (i64)b * k_bs + (i64)h * k_hs;
    const bf16* vb = v + (i64)b * v_bs + (i64)h * v_hs;
    const bf16* dob = dout + (i64)b * do_bs + (i64)h * do_hs;
    const i64 row_base = ((i64)b * n_heads + h) * s_q;  // of lse, Dd and dq_acc
    const float* mrow = mask ? mask + (i64)b * s_k : nullptr;

    auto load_q_tile = [&](int qt, int buf) {
        load_tile_async<BMQ, D, NT>(sQ + buf * BMQ * D, qb, q_rs, qt * BMQ, s_q);
        load_tile_async<BMQ, D, NT>(sdO + buf * BMQ * D, dob, do_rs, qt * BMQ, s_q);
        for (int i = threadIdx.x; i < BMQ; i += NT) {
            const int row = qt * BMQ + i;
            const bool ok = row < s_q;
            cp_async4(smem_u32(sLse + buf * BMQ + i), lse + row_base + (ok ? row : 0), ok);
            cp_async4(smem_u32(sDd + buf * BMQ + i), dd + row_base + (ok ? row : 0), ok);
        }
    };

    const int n_qt = (s_q + BMQ - 1) / BMQ;
    load_tile_async<BN, D, NT>(sK, kb, k_rs, k0, s_k);
    load_tile_async<BN, D, NT>(sV, vb, v_rs, k0, s_k);
    if (n_qt > 0) load_q_tile(0, 0);
    cp_async_commit();
    const float mu = mask_row_max(mrow, s_k, scratch);
    const float scale_log2 = scale * ATTN_LOG2E;

    // This thread's two key rows (g and g+8 of the warp's 16) and their mask values.
    int key[2];
    bool key_ok[2];
    float mk[2];
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
        key[hf] = k0 + warp * 16 + g + 8 * hf;
        key_ok[hf] = key[hf] < s_k;
        mk[hf] = (mrow != nullptr && key_ok[hf]) ? mrow[key[hf]] : 0.0f;
    }

    float acc_dk[ND][4], acc_dv[ND][4];
#pragma unroll
    for (int n = 0; n < ND; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dk[n][e] = acc_dv[n][e] = 0.0f;
    u32 ka[KVREG ? KD : 1][4], va[KVREG ? KD : 1][4];

    for (int qt = 0; qt < n_qt; ++qt) {
        const int buf = qt & 1;
        if (qt + 1 < n_qt) {
            load_q_tile(qt + 1, buf ^ 1);  // buffer last read in iteration qt-1 (ended synchronised)
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* tQ = sQ + buf * BMQ * D;
        const bf16* tdO = sdO + buf * BMQ * D;
        const float* tLse = sLse + buf * BMQ;
        const float* tDd = sDd + buf * BMQ;
        if (KVREG && qt == 0) {
#pragma unroll
            for (int kk = 0; kk < (KVREG ? KD : 0); ++kk) {
                ldsm_a<CH>(ka[kk], sK, warp * 16, kk, lane);
                ldsm_a<CH>(va[kk], sV, warp * 16, kk, lane);
            }
        }

        // S^T = K_w Q^T and dP^T = V_w dO^T: [16 keys x BMQ queries] each.
        float st[NQ][4], dpt[NQ][4];
#pragma unroll
        for (int j = 0; j < NQ; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) st[j][e] = dpt[j][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
            u32 kf[4], vf[4];
            if (KVREG) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    kf[e] = ka[KVREG ? kk : 0][e];
                    vf[e] = va[KVREG ? kk : 0][e];
                }
            } else {
                ldsm_a<CH>(kf, sK, warp * 16, kk, lane);
                ldsm_a<CH>(vf, sV, warp * 16, kk, lane);
            }
#pragma unroll
            for (int jn = 0; jn < BMQ / 16; ++jn) {
                u32 qf[4], of[4];
                const int r = jn * 16 + (lane & 7) + 8 * (lane >> 4);
                const int c = kk * 2 + ((lane >> 3) & 1);
                ldsm_x4(qf, smem_u32(tQ + swz<CH>(r, c)));
                ldsm_x4(of, smem_u32(tdO + swz<CH>(r, c)));
                mma_bf16(st[2 * jn], kf, qf[0], qf[1]);
                mma_bf16(st[2 * jn + 1], kf, qf[2], qf[3]);
                mma_bf16(dpt[2 * jn], vf, of[0], of[1]);
                mma_bf16(dpt[2 * jn + 1], vf, of[2], of[3]);
            }
        }

        // P^T = exp(z - lse) (recomputed exactly as the forward scored), dS^T = P^T (dP^T - Dd).
#pragma unroll
        for (int j = 0; j < NQ; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = j * 8 + 2 * t + e;
                const bool q_ok = qt * BMQ + col < s_q;
                const float lse_log2 = tLse[col] * ATTN_LOG2E;
                const float ddv = tDd[col];
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const float x = st[j][2 * hf + e];
                    const float z =
                        mrow != nullptr ? masked_score(x, scale, mk[hf], mu) * ATTN_LOG2E : x * scale_log2;
                    const float p = (q_ok && key_ok[hf]) ? exp2_ftz(z - lse_log2) : 0.0f;
                    st[j][2 * hf + e] = p;
                    dpt[j][2 * hf + e] = p * (dpt[j][2 * hf + e] - ddv);
                }
            }

        // dV_w += P^T dO, dK_w += dS^T Q (k = queries; B fragments via ldmatrix.trans).
#pragma unroll
        for (int kk = 0; kk < BMQ / 16; ++kk) {
            u32 pa[4], sa[4];
            pa[0] = pack_bf16x2_rn(st[2 * kk][0], st[2 * kk][1]);
            pa[1] = pack_bf16x2_rn(st[2 * kk][2], st[2 * kk][3]);
            pa[2] = pack_bf16x2_rn(st[2 * kk + 1][0], st[2 * kk + 1][1]);
            pa[3] = pack_bf16x2_rn(st[2 * kk + 1][2], st[2 * kk + 1][3]);
            sa[0] = pack_bf16x2_rn(dpt[2 * kk][0], dpt[2 * kk][1]);
            sa[1] = pack_bf16x2_rn(dpt[2 * kk][2], dpt[2 * kk][3]);
            sa[2] = pack_bf16x2_rn(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
            sa[3] = pack_bf16x2_rn(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
            // dS^T to shared memory ([key][query]) for the dQ product below.
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int r = warp * 16 + g + 8 * hf;
#pragma unroll
                for (int jj = 0; jj < 2; ++jj) {
                    const int col = (2 * kk + jj) * 8 + 2 * t;
                    *reinterpret_cast<u32*>(sdS + swz<CHS>(r, col >> 3) + (col & 7)) = sa[2 * jj + hf];
                }
            }
#pragma unroll
            for (int dn = 0; dn < D / 16; ++dn) {
                u32 of[4], qf[4];
                const int r = kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
                const int c = dn * 2 + (lane >> 4);
                ldsm_x4_t(of, smem_u32(tdO + swz<CH>(r, c)));
                ldsm_x4_t(qf, smem_u32(tQ + swz<CH>(r, c)));
                mma_bf16(acc_dv[2 * dn], pa, of[0], of[1]);
                mma_bf16(acc_dv[2 * dn + 1], pa, of[2], of[3]);
                mma_bf16(acc_dk[2 * dn], sa, qf[0], qf[1]);
                mma_bf16(acc_dk[2 * dn + 1], sa, qf[2], qf[3]);
            }
        }
        __syncthreads();  // all of dS^T is in shared memory

        // dQ[BMQ x D] += dS K over the block's BN keys; this warp: rows mi*16.., d-tiles nd0...
        {
            const int mi = warp % MQ, nd0 = (warp / MQ) * NDW;
            float dq[NDW][4];
#pragma unroll
            for (int n = 0; n < NDW; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk) {
                u32 a[4];
                // dS (rows = queries, k = keys) from the [key][query] tile, transposed on load.
                const int ra = kk * 16 + (lane & 7) + 8 * (lane >> 4);
                ldsm_x4_t(a, smem_u32(sdS + swz<CHS>(ra, mi * 2 + ((lane >> 3) & 1))));
#pragma unroll
                for (int dn = 0; dn < NDW / 2; ++dn) {
                    u32 kf[4];
                    const int r = kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
                    ldsm_x4_t(kf, smem_u32(sK + swz<CH>(r, nd0 + dn * 2 + (lane >> 4))));
                    mma_bf16(dq[2 * dn], a, kf[0], kf[1]);
                    mma_bf16(dq[2 * dn + 1], a, kf[2], kf[3]);
                }
            }
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int row = qt * BMQ + mi * 16 + g + 8 * hf;
                if (row < s_q) {
                    float* dst = dq_acc + (row_base + row) * D;
#pragma unroll
                    for (int n = 0; n < NDW; ++n) {
                        const int col = (nd0 + n) * 8 + 2 * t;
#if __CUDA_ARCH__ >= 900
                        asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(dst + col),
                                     "f"(dq[n][2 * hf]), "f"(dq[n][2 * hf + 1])
                                     : "memory");
#else
                        atomicAdd(dst + col, dq[n][2 * hf]);
                        atomicAdd(dst + col + 1, dq[n][2 * hf + 1]);
#endif
                    }
                }
            }
        }
        __syncthreads();  // dS^T and this tile's buffers are free again
    }
    cp_async_wait<0>();  // nothing in flight at exit (s_q == 0 never waited)

    bf16* dkb = dk + (i64)b * dk_bs + (i64)h * dk_hs;
    bf16* dvb = dv + (i64)b * dv_bs + (i64)h * dv_hs;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
        if (!key_ok[hf]) continue;
#pragma unroll
        for (int n = 0; n < ND; ++n) {
            const int col = n * 8 + 2 * t;
            *reinterpret_cast<u32*>(dkb + (i64)key[hf] * dk_rs + col) =
                pack_bf16x2_rn(acc_dk[n][2 * hf] * scale, acc_dk[n][2 * hf + 1] * scale);
            *reinterpret_cast<u32*>(dvb + (i64)key[hf] * dv_rs + col) =
                pack_bf16x2_rn(acc_dv[n][2 * hf], acc_dv[n][2 * hf + 1]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SIMT versions (f32, and bf16 views the tensor-core path cannot read). 4 warps; each warp owns
// 4 rows; a tile holds 32 rows of the other side, one per lane. Score dot products run along d
// with one lane per key (tiles padded to D+1 floats per row: conflict-free), output rows are
// spread over lanes (d = lane + 32c), probabilities broadcast by shuffles.
#define SIMT_NW 4
#define SIMT_RPW 4
#define SIMT_ROWS (SIMT_NW * SIMT_RPW)
#define SIMT_TILE 32

// Rows [row0, row0 + ROWS) x D of a strided tensor as f32 into a [ROWS][LD] tile (0 past nrows).
template <typename T, int ROWS, int D, int LD>
__device__ __forceinline__ void load_rows_f32(float* dst, const T* src, i64 row_stride, int row0, int nrows) {
    for (int i = threadIdx.x; i < ROWS * D; i += blockDim.x) {
        const int r = i / D, c = i % D;
        const int gr = row0 + r;
        dst[r * LD + c] = gr < nrows ? to_f32(src[(i64)gr * row_stride + c]) : 0.0f;
    }
}

// Forward. Shared memory (f32): Q [16][D], K [32][D+1], V [32][D], scratch [32].
template <typename T, int D>
__device__ __forceinline__ void attn_fwd_simt(const T* __restrict__ q, i64 q_bs, i64 q_hs, i64 q_rs,
                                              const T* __restrict__ k, i64 k_bs, i64 k_hs, i64 k_rs,
                                              const T* __restrict__ v, i64 v_bs, i64 v_hs, i64 v_rs,
                                              const float* __restrict__ mask, T* __restrict__ o, i64 o_bs,
                                              i64 o_hs, i64 o_rs, float* __restrict__ lse, int n_heads, int s_q,
                                              int s_k, float scale) {
    constexpr int DL = D / 32;
    float* sQ = reinterpret_cast<float*>(attn_smem);
    float* sK = sQ + SIMT_ROWS * D;
    float* sV = sK + SIMT_TILE * (D + 1);
    float* scratch = sV + SIMT_TILE * D;  // [32]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int q0 = blockIdx.x * SIMT_ROWS, h = blockIdx.y, b = blockIdx.z;
    const T* qb = q + (i64)b * q_bs + (i64)h * q_hs;
    const T* kb = k + (i64)b * k_bs + (i64)h * k_hs;
    const T* vb = v + (i64)b * v_bs + (i64)h * v_hs;
    const float* mrow = mask ? mask + (i64)b * s_k : nullptr;

    load_rows_f32<T, SIMT_ROWS, D, D>(sQ, qb, q_rs, q0, s_q);
    const float mu = mask_row_max(mrow, s_k, scratch);

    float acc[SIMT_RPW][DL], m[SIMT_RPW], l[SIMT_RPW];
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        m[r] = ATTN_NEG_INF;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < DL; ++c) acc[r][c] = 0.0f;
    }
    for (int k0 = 0; k0 < s_k; k0 += SIMT_TILE) {
        __syncthreads();  // the previous tile is consumed (and the Q tile is written)
        load_rows_f32<T, SIMT_TILE, D, D + 1>(sK, kb, k_rs, k0, s_k);
        load_rows_f32<T, SIMT_TILE, D, D>(sV, vb, v_rs, k0, s_k);
        __syncthreads();
        const int key = k0 + lane;
        const bool key_ok = key < s_k;
        const float mk = (mrow != nullptr && key_ok) ? mrow[key] : 0.0f;
#pragma unroll
        for (int r = 0; r < SIMT_RPW; ++r) {
            const float* qr = sQ + (warp * SIMT_RPW + r) * D;
            const float* kr = sK + lane * (D + 1);
            float dot = 0.0f;
#pragma unroll 16
            for (int d = 0; d < D; ++d) dot = fmaf(qr[d], kr[d], dot);
            const float z = !key_ok ? ATTN_NEG_INF : (mrow != nullptr ? masked_score(dot, scale, mk, mu) : dot * scale);
            const float mx = fmaxf(m[r], warp_max(z));
            const float m_use = mx == ATTN_NEG_INF ? 0.0f : mx;
            const float alpha = expf(m[r] - m_use);
            const float p = expf(z - m_use);
            l[r] = l[r] * alpha + warp_sum(p);
            m[r] = mx;
#pragma unroll
            for (int c = 0; c < DL; ++c) acc[r][c] *= alpha;
#pragma unroll 8
            for (int j = 0; j < SIMT_TILE; ++j) {
                const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
                for (int c = 0; c < DL; ++c) acc[r][c] = fmaf(pj, sV[j * D + lane + 32 * c], acc[r][c]);
            }
        }
    }
    T* ob = o + (i64)b * o_bs + (i64)h * o_hs;
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        const int row = q0 + warp * SIMT_RPW + r;
        if (row >= s_q) continue;
        const float inv = 1.0f / l[r];
#pragma unroll
        for (int c = 0; c < DL; ++c) ob[(i64)row * o_rs + lane + 32 * c] = from_f32<T>(acc[r][c] * inv);
        if (lane == 0) {
            const float mm = m[r] == ATTN_NEG_INF ? 0.0f : m[r];
            lse[((i64)b * n_heads + h) * s_q + row] = mm + logf(l[r]);
        }
    }
}

// Backward, dQ (rows = queries, tile = keys). Deterministic: each dQ row is one warp's sum.
// Shared memory (f32): Q [16][D], dO [16][D], K [32][D+1], V [32][D+1], scratch [32].
template <typename T, int D>
__device__ __forceinline__ void attn_bwd_dq_simt(const T* __restrict__ q, i64 q_bs, i64 q_hs, i64 q_rs,
                                                 const T* __restrict__ k, i64 k_bs, i64 k_hs, i64 k_rs,
                                                 const T* __restrict__ v, i64 v_bs, i64 v_hs, i64 v_rs,
                                                 const T* __restrict__ dout, i64 do_bs, i64 do_hs, i64 do_rs,
                                                 const float* __restrict__ mask, const float* __restrict__ lse,
                                                 const float* __restrict__ dd, T* __restrict__ dq, i64 dq_bs,
                                                 i64 dq_hs, i64 dq_rs, int n_heads, int s_q, int s_k, float scale) {
    constexpr int DL = D / 32;
    float* sQ = reinterpret_cast<float*>(attn_smem);
    float* sdO = sQ + SIMT_ROWS * D;
    float* sK = sdO + SIMT_ROWS * D;
    float* sV = sK + SIMT_TILE * (D + 1);
    float* scratch = sV + SIMT_TILE * (D + 1);  // [32]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int q0 = blockIdx.x * SIMT_ROWS, h = blockIdx.y, b = blockIdx.z;
    const T* kb = k + (i64)b * k_bs + (i64)h * k_hs;
    const T* vb = v + (i64)b * v_bs + (i64)h * v_hs;
    const i64 row_base = ((i64)b * n_heads + h) * s_q;
    const float* mrow = mask ? mask + (i64)b * s_k : nullptr;

    load_rows_f32<T, SIMT_ROWS, D, D>(sQ, q + (i64)b * q_bs + (i64)h * q_hs, q_rs, q0, s_q);
    load_rows_f32<T, SIMT_ROWS, D, D>(sdO, dout + (i64)b * do_bs + (i64)h * do_hs, do_rs, q0, s_q);
    const float mu = mask_row_max(mrow, s_k, scratch);

    float acc[SIMT_RPW][DL], row_lse[SIMT_RPW], row_dd[SIMT_RPW];
    bool row_ok[SIMT_RPW];
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        const int row = q0 + warp * SIMT_RPW + r;
        row_ok[r] = row < s_q;
        row_lse[r] = row_ok[r] ? lse[row_base + row] : 0.0f;
        row_dd[r] = row_ok[r] ? dd[row_base + row] : 0.0f;
#pragma unroll
        for (int c = 0; c < DL; ++c) acc[r][c] = 0.0f;
    }
    for (int k0 = 0; k0 < s_k; k0 += SIMT_TILE) {
        __syncthreads();
        load_rows_f32<T, SIMT_TILE, D, D + 1>(sK, kb, k_rs, k0, s_k);
        load_rows_f32<T, SIMT_TILE, D, D + 1>(sV, vb, v_rs, k0, s_k);
        __syncthreads();
        const int key = k0 + lane;
        const bool key_ok = key < s_k;
        const float mk = (mrow != nullptr && key_ok) ? mrow[key] : 0.0f;
#pragma unroll
        for (int r = 0; r < SIMT_RPW; ++r) {
            const float* qr = sQ + (warp * SIMT_RPW + r) * D;
            const float* gr = sdO + (warp * SIMT_RPW + r) * D;
            const float* kr = sK + lane * (D + 1);
            const float* vr = sV + lane * (D + 1);
            float dot = 0.0f, dp = 0.0f;
#pragma unroll 16
            for (int d = 0; d < D; ++d) {
                dot = fmaf(qr[d], kr[d], dot);
                dp = fmaf(gr[d], vr[d], dp);
            }
            const float z = mrow != nullptr ? masked_score(dot, scale, mk, mu) : dot * scale;
            const float p = (key_ok && row_ok[r]) ? expf(z - row_lse[r]) : 0.0f;
            const float ds = p * (dp - row_dd[r]);
#pragma unroll 8
            for (int j = 0; j < SIMT_TILE; ++j) {
                const float dsj = __shfl_sync(0xffffffffu, ds, j);
#pragma unroll
                for (int c = 0; c < DL; ++c) acc[r][c] = fmaf(dsj, sK[j * (D + 1) + lane + 32 * c], acc[r][c]);
            }
        }
    }
    T* dqb = dq + (i64)b * dq_bs + (i64)h * dq_hs;
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        const int row = q0 + warp * SIMT_RPW + r;
        if (row >= s_q) continue;
#pragma unroll
        for (int c = 0; c < DL; ++c) dqb[(i64)row * dq_rs + lane + 32 * c] = from_f32<T>(acc[r][c] * scale);
    }
}

// Backward, dK and dV (rows = keys, tile = queries). Deterministic.
// Shared memory (f32): K [16][D], V [16][D], Q [32][D+1], dO [32][D+1], lse [32], Dd [32],
// scratch [32].
template <typename T, int D>
__device__ __forceinline__ void attn_bwd_dkdv_simt(const T* __restrict__ q, i64 q_bs, i64 q_hs, i64 q_rs,
                                                   const T* __restrict__ k, i64 k_bs, i64 k_hs, i64 k_rs,
                                                   const T* __restrict__ v, i64 v_bs, i64 v_hs, i64 v_rs,
                                                   const T* __restrict__ dout, i64 do_bs, i64 do_hs, i64 do_rs,
                                                   const float* __restrict__ mask, const float* __restrict__ lse,
                                                   const float* __restrict__ dd, T* __restrict__ dk, i64 dk_bs,
                                                   i64 dk_hs, i64 dk_rs, T* __restrict__ dv, i64 dv_bs, i64 dv_hs,
                                                   i64 dv_rs, int n_heads, int s_q, int s_k, float scale) {
    constexpr int DL = D / 32;
    float* sK = reinterpret_cast<float*>(attn_smem);
    float* sV = sK + SIMT_ROWS * D;
    float* sQ = sV + SIMT_ROWS * D;
    float* sdO = sQ + SIMT_TILE * (D + 1);
    float* sLse = sdO + SIMT_TILE * (D + 1);
    float* sDd = sLse + SIMT_TILE;
    float* scratch = sDd + SIMT_TILE;  // [32]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int k0 = blockIdx.x * SIMT_ROWS, h = blockIdx.y, b = blockIdx.z;
    const T* qb = q + (i64)b * q_bs + (i64)h * q_hs;
    const T* dob = dout + (i64)b * do_bs + (i64)h * do_hs;
    const i64 row_base = ((i64)b * n_heads + h) * s_q;
    const float* mrow = mask ? mask + (i64)b * s_k : nullptr;

    load_rows_f32<T, SIMT_ROWS, D, D>(sK, k + (i64)b * k_bs + (i64)h * k_hs, k_rs, k0, s_k);
    load_rows_f32<T, SIMT_ROWS, D, D>(sV, v + (i64)b * v_bs + (i64)h * v_hs, v_rs, k0, s_k);
    const float mu = mask_row_max(mrow, s_k, scratch);

    float acc_dk[SIMT_RPW][DL], acc_dv[SIMT_RPW][DL], mk[SIMT_RPW];
    bool key_ok[SIMT_RPW];
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        const int key = k0 + warp * SIMT_RPW + r;
        key_ok[r] = key < s_k;
        mk[r] = (mrow != nullptr && key_ok[r]) ? mrow[key] : 0.0f;
#pragma unroll
        for (int c = 0; c < DL; ++c) acc_dk[r][c] = acc_dv[r][c] = 0.0f;
    }
    for (int qs = 0; qs < s_q; qs += SIMT_TILE) {
        __syncthreads();
        load_rows_f32<T, SIMT_TILE, D, D + 1>(sQ, qb, q_rs, qs, s_q);
        load_rows_f32<T, SIMT_TILE, D, D + 1>(sdO, dob, do_rs, qs, s_q);
        if (threadIdx.x < SIMT_TILE) {
            const int row = qs + threadIdx.x;
            sLse[threadIdx.x] = row < s_q ? lse[row_base + row] : 0.0f;
            sDd[threadIdx.x] = row < s_q ? dd[row_base + row] : 0.0f;
        }
        __syncthreads();
        const bool q_ok = qs + lane < s_q;
#pragma unroll
        for (int r = 0; r < SIMT_RPW; ++r) {
            const float* kr = sK + (warp * SIMT_RPW + r) * D;
            const float* vr = sV + (warp * SIMT_RPW + r) * D;
            const float* qr = sQ + lane * (D + 1);
            const float* gr = sdO + lane * (D + 1);
            float dot = 0.0f, dp = 0.0f;
#pragma unroll 16
            for (int d = 0; d < D; ++d) {
                dot = fmaf(kr[d], qr[d], dot);
                dp = fmaf(vr[d], gr[d], dp);
            }
            const float z = mrow != nullptr ? masked_score(dot, scale, mk[r], mu) : dot * scale;
            const float p = (q_ok && key_ok[r]) ? expf(z - sLse[lane]) : 0.0f;
            const float ds = p * (dp - sDd[lane]);
#pragma unroll 8
            for (int i = 0; i < SIMT_TILE; ++i) {
                const float pi = __shfl_sync(0xffffffffu, p, i);
                const float dsi = __shfl_sync(0xffffffffu, ds, i);
#pragma unroll
                for (int c = 0; c < DL; ++c) {
                    acc_dv[r][c] = fmaf(pi, sdO[i * (D + 1) + lane + 32 * c], acc_dv[r][c]);
                    acc_dk[r][c] = fmaf(dsi, sQ[i * (D + 1) + lane + 32 * c], acc_dk[r][c]);
                }
            }
        }
    }
    T* dkb = dk + (i64)b * dk_bs + (i64)h * dk_hs;
    T* dvb = dv + (i64)b * dv_bs + (i64)h * dv_hs;
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        if (!key_ok[r]) continue;
        const i64 key = k0 + warp * SIMT_RPW + r;
#pragma unroll
        for (int c = 0; c < DL; ++c) {
            dkb[key * dk_rs + lane + 32 * c] = from_f32<T>(acc_dk[r][c] * scale);
            dvb[key * dv_rs + lane + 32 * c] = from_f32<T>(acc_dv[r][c]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward helpers shared by both paths.

// Dd[row] = sum_d dO[row, d] * O[row, d] for every row (b, h, s) of [B, N, S_q]; one warp per row.
// Also zeroes dq_acc's row when dq_acc is not null (the mma path accumulates into it).
template <typename T>
__device__ __forceinline__ void attn_bwd_pre(const T* __restrict__ o, i64 o_bs, i64 o_hs, i64 o_rs,
                                             const T* __restrict__ dout, i64 do_bs, i64 do_hs, i64 do_rs,
                                             float* __restrict__ dd, float* __restrict__ dq_acc, int n_heads,
                                             int s_q, int d, i64 rows) {
    const int lane = threadIdx.x & 31;
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // whole warps leave together
    const i64 s = row % s_q, bh = row / s_q;
    const i64 h = bh % n_heads, b = bh / n_heads;
    const T* orow = o + b * o_bs + h * o_hs + s * o_rs;
    const T* grow = dout + b * do_bs + h * do_hs + s * do_rs;
    float sum = 0.0f;
    for (int c = lane; c < d; c += 32) sum = fmaf(to_f32(orow[c]), to_f32(grow[c]), sum);
    sum = warp_sum(sum);
    if (lane == 0) dd[row] = sum;
    if (dq_acc != nullptr)
        for (int c = lane; c < d; c += 32) dq_acc[row * d + c] = 0.0f;
}

// dq[b, h, s, :] = scale * dq_acc[(b, h, s), :] in the storage type, through dq's strides.
template <typename T>
__device__ __forceinline__ void attn_dq_convert(const float* __restrict__ dq_acc, T* __restrict__ dq, i64 dq_bs,
                                                i64 dq_hs, i64 dq_rs, int n_heads, int s_q, int d, i64 total,
                                                float scale) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        const i64 row = i / d, c = i % d;
        const i64 s = row % s_q, bh = row / s_q;
        const i64 h = bh % n_heads, b = bh / n_heads;
        dq[b * dq_bs + h * dq_hs + s * dq_rs + c] = from_f32<T>(dq_acc[i] * scale);
    }
}

// ---------------------------------------------------------------------------------------------
// Instantiations. Names: attention_<kernel>[_d<D>]_<f32|bf16>.

#define ATTN_FWD_ARGS(T)                                                                                       \
    const T *q, i64 q_bs, i64 q_hs, i64 q_rs, const T *k, i64 k_bs, i64 k_hs, i64 k_rs, const T *v, i64 v_bs, \
        i64 v_hs, i64 v_rs, const float *mask, T *o, i64 o_bs, i64 o_hs, i64 o_rs, float *lse, int n_heads,   \
        int s_q, int s_k, float scale
#define ATTN_FWD_PASS q, q_bs, q_hs, q_rs, k, k_bs, k_hs, k_rs, v, v_bs, v_hs, v_rs, mask, o, o_bs, o_hs, o_rs, lse, \
    n_heads, s_q, s_k, scale
#define ATTN_BWD_IN(T)                                                                                         \
    const T *q, i64 q_bs, i64 q_hs, i64 q_rs, const T *k, i64 k_bs, i64 k_hs, i64 k_rs, const T *v, i64 v_bs, \
        i64 v_hs, i64 v_rs, const T *dout, i64 do_bs, i64 do_hs, i64 do_rs, const float *mask,                \
        const float *lse, const float *dd
#define ATTN_BWD_IN_PASS                                                                                 \
    q, q_bs, q_hs, q_rs, k, k_bs, k_hs, k_rs, v, v_bs, v_hs, v_rs, dout, do_bs, do_hs, do_rs, mask, lse, \
        dd

#define ATTN_MMA(D)                                                                                              \
    extern "C" __global__ void __launch_bounds__(FwdMmaCfg<D>::NW * 32)                                          \
        attention_fwd_mma_d##D##_bf16(ATTN_FWD_ARGS(bf16)) {                                                     \
        attn_fwd_mma<D>(ATTN_FWD_PASS);                                                                          \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(BwdMmaCfg<D>::NW * 32) attention_bwd_mma_d##D##_bf16(          \
        ATTN_BWD_IN(bf16), float* dq_acc, bf16* dk, i64 dk_bs, i64 dk_hs, i64 dk_rs, bf16* dv, i64 dv_bs,      \
        i64 dv_hs, i64 dv_rs, int n_heads, int s_q, int s_k, float scale) {                                      \
        attn_bwd_mma<D>(ATTN_BWD_IN_PASS, dq_acc, dk, dk_bs, dk_hs, dk_rs, dv, dv_bs, dv_hs, dv_rs, n_heads, s_q, \
                        s_k, scale);                                                                             \
    }

#define ATTN_SIMT(T, SUF, D)                                                                                      \
    extern "C" __global__ void __launch_bounds__(SIMT_NW * 32) attention_fwd_simt_d##D##_##SUF(ATTN_FWD_ARGS(T)) { \
        attn_fwd_simt<T, D>(ATTN_FWD_PASS);                                                                       \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(SIMT_NW * 32) attention_bwd_dq_simt_d##D##_##SUF(               \
        ATTN_BWD_IN(T), T* dq, i64 dq_bs, i64 dq_hs, i64 dq_rs, int n_heads, int s_q, int s_k, float scale) {     \
        attn_bwd_dq_simt<T, D>(ATTN_BWD_IN_PASS, dq, dq_bs, dq_hs, dq_rs, n_heads, s_q, s_k, scale);             \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(SIMT_NW * 32) attention_bwd_dkdv_simt_d##D##_##SUF(             \
        ATTN_BWD_IN(T), T* dk, i64 dk_bs, i64 dk_hs, i64 dk_rs, T* dv, i64 dv_bs, i64 dv_hs, i64 dv_rs,          \
        int n_heads, int s_q, int s_k, float scale) {                                                             \
        attn_bwd_dkdv_simt<T, D>(ATTN_BWD_IN_PASS, dk, dk_bs, dk_hs, dk_rs, dv, dv_bs, dv_hs, dv_rs, n_heads,    \
                                 s_q, s_k, scale);                                                                \
    }

#define ATTN_HELPERS(T, SUF)                                                                                       \
    extern "C" __global__ void attention_bwd_pre_##SUF(const T* o, i64 o_bs, i64 o_hs, i64 o_rs, const T* dout,    \
                                                       i64 do_bs, i64 do_hs, i64 do_rs, float* dd, float* dq_acc, \
                                                       int n_heads, int s_q, int d, i64 rows) {                    \
        attn_bwd_pre<T>(o, o_bs, o_hs, o_rs, dout, do_bs, do_hs, do_rs, dd, dq_acc, n_heads, s_q, d, rows);       \
    }                                                                                                              \
    extern "C" __global__ void attention_dq_convert_##SUF(const float* dq_acc, T* dq, i64 dq_bs, i64 dq_hs,        \
                                                          i64 dq_rs, int n_heads, int s_q, int d, i64 total,       \
                                                          float scale) {                                           \
        attn_dq_convert<T>(dq_acc, dq, dq_bs, dq_hs, dq_rs, n_heads, s_q, d, total, scale);                        \
    }

ATTN_MMA(32)
ATTN_MMA(64)
ATTN_MMA(128)
ATTN_SIMT(float, f32, 32)
ATTN_SIMT(float, f32, 64)
ATTN_SIMT(float, f32, 128)
ATTN_SIMT(bf16, bf16, 32)
ATTN_SIMT(bf16, bf16, 64)
ATTN_SIMT(bf16, bf16, 128)
ATTN_HELPERS(float, f32)
ATTN_HELPERS(bf16, bf16)
