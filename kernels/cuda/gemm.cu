// gemm.cu -- C = op(A) op(B) (+ old C) (+ bias[n], then GELU), batched; f32 or bf16 storage,
// f32 accumulation. The semantics are kernels::cpu::matmul::gemm_scalar's (see matmul.rs):
//   op(A): (m, k), stored (m, k) row stride lda, or, when TA, stored (k, m);
//   op(B): (k, n), stored (k, n) row stride ldb, or, when TB, stored (n, k) (a Linear weight);
//   batch entry b starts at b * stride (0 = one operand shared by the whole batch).
//
// Versions (all compiled and tested; kernels/src/cuda/gemm.rs picks one per call):
//  1. gemm_simt_<dt>: 64x64x16 shared-memory tiles, 4x4 outputs per thread, plain f32 FMAs in
//     k order. Any alignment, any layout. Serves the exact-IEEE f32 mode, operands whose
//     addresses or leading dimensions are not 16-byte multiples, and k = 0.
//  2. gemm_mma_<cfg>_<ab>_<dt>: tensor cores through mma.sync (bf16: m16n8k16; f32: TF32
//     m16n8k8 with round-to-nearest conversion), cp.async 16-byte copies into a 4-stage
//     shared-memory ring, ldmatrix fragment loads, XOR-swizzled shared layouts, fused epilogue.
//     <ab> is the storage of A then B: n = as in matmul.rs's untransposed case, t = transposed
//     (so the Linear forward x W^T is "nt"). Configs (block tile, warps, warp tile):
//       l: 128x256, 8 warps (2x4), 64x64 -- big outputs; 1 block per SM
//       m: 128x128, 4 warps (2x2), 64x64 -- medium outputs; 2 blocks per SM
//       s:  64x64,  4 warps (2x2), 32x32 -- small outputs; 4 blocks per SM
//     With gridDim.y > 1 (split-K), block y covers k in [y*k_split, (y+1)*k_split) and writes
//     its raw f32 partial sums to `work`; gemm_splitk_reduce_<dt> then adds the partials in
//     split order (deterministic) and applies the epilogue.
//  3. gemm_sm90a.cu: wgmma + TMA for Hopper (opt-in; see that file).
//
// Shared-memory tiles hold 64 bytes of k per row of a k-major operand (BK = 32 bf16 or 16 f32:
// two mma k-steps either way) and are stored the way the operand is stored in global memory:
//  - k-major (A untransposed, B transposed): [rows of m or n][64 B]; 16-byte chunk c of row r
//    lives at chunk slot c ^ ((r >> 1) & 3). An ldmatrix phase reads 8 consecutive rows at one
//    logical chunk: (r & 1, slot) then takes 8 distinct values = 8 distinct 16-byte bank groups.
//  - mn-major (A transposed, B untransposed): [BK rows of k][BM or BN elements]; row bytes are
//    a multiple of 128, so without a swizzle all rows of a column would share banks.
//    bf16: chunk c of row r at c ^ (r & 7), conflict-free for ldmatrix.trans (8 rows, 1 chunk).
//    f32:  TF32 fragments cannot come from ldmatrix here (.trans moves 16-bit halves), so they
//          are read with 32-bit LDS, lane (g = lane / 4, t = lane % 4) reading row t (+4) and
//          element g (+8): rows are padded by 8 floats, so bank = (8t + g) mod 32, all distinct.

enum { EPI_NONE = 0, EPI_BIAS = 1, EPI_BIAS_GELU_TANH = 2, EPI_BIAS_GELU_ERF = 3 };

// ---------------------------------------------------------------------------------------------
// Epilogue, shared by every version.

__device__ __forceinline__ bool aligned_to(const void* p, unsigned bytes) { return ((u64)p & (bytes - 1)) == 0; }

__device__ __forceinline__ void load2(const float* p, float& a, float& b) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    a = v.x;
    b = v.y;
}
__device__ __forceinline__ void load2(const bf16* p, float& a, float& b) {
    const u32 v = *reinterpret_cast<const u32*>(p);
    a = __uint_as_float(v << 16);
    b = __uint_as_float(v & 0xffff0000u);
}
__device__ __forceinline__ void store2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }
__device__ __forceinline__ void store2(bf16* p, float a, float b) { *reinterpret_cast<u32*>(p) = pack_bf16x2(a, b); }

// Finishes C[off] (and C[off + 1] when `two`): accumulator values v0, v1 of columns col, col + 1,
// plus the old C (accumulate), plus bias[col], then GELU, writing the pre-GELU values to
// pre[off] when pre is not null. Pairs go as one 8- or 4-byte access where the address allows.
template <typename T>
__device__ __forceinline__ void gemm_epilogue2(T* C, T* pre, const T* bias, long long off, int col, bool two, float v0,
                                               float v1, int accumulate, int epi) {
    const bool vec = two && aligned_to(C + off, 2 * sizeof(T));
    if (accumulate) {
        if (vec) {
            float c0, c1;
            load2(C + off, c0, c1);
            v0 += c0;
            v1 += c1;
        } else {
            v0 += to_f32(C[off]);
            if (two) v1 += to_f32(C[off + 1]);
        }
    }
    if (epi != EPI_NONE) {
        v0 += to_f32(bias[col]);
        if (two) v1 += to_f32(bias[col + 1]);
        if (epi != EPI_BIAS) {
            if (pre != nullptr) {
                if (two && aligned_to(pre + off, 2 * sizeof(T))) {
                    store2(pre + off, v0, v1);
                } else {
                    pre[off] = from_f32<T>(v0);
                    if (two) pre[off + 1] = from_f32<T>(v1);
                }
            }
            if (epi == EPI_BIAS_GELU_TANH) {
                v0 = gelu_tanh_f(v0);
                v1 = gelu_tanh_f(v1);
            } else {
                v0 = gelu_erf_f(v0);
                v1 = gelu_erf_f(v1);
            }
        }
    }
    if (vec) {
        store2(C + off, v0, v1);
    } else {
        C[off] = from_f32<T>(v0);
        if (two) C[off + 1] = from_f32<T>(v1);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. SIMT reference: obviously correct, exact IEEE f32 arithmetic (one fmaf per k, in k order).

#define SIMT_BM 64
#define SIMT_BN 64
#define SIMT_BK 16
#define SIMT_THREADS 256

template <typename T>
__device__ __forceinline__ void gemm_simt(const T* __restrict__ A, const T* __restrict__ B, T* C, const T* bias, T* pre,
                                          int M, int N, int K, i64 lda, i64 ldb, i64 ldc, i64 sa, i64 sb, i64 sc,
                                          int batch, int ta, int tb, int accumulate, int epi) {
    // k-major tiles: a thread's 4 A values (rows ty + 16r) and 4 B values (columns tx + 16c)
    // of one k are 4 broadcast / 4 conflict-free reads. +4 padding staggers the stores.
    __shared__ float As[SIMT_BK][SIMT_BM + 4];
    __shared__ float Bs[SIMT_BK][SIMT_BN + 4];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * SIMT_BM, n0 = blockIdx.x * SIMT_BN;
    for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
        const T* Ab = A + (i64)bz * sa;
        const T* Bb = B + (i64)bz * sb;
        float acc[4][4];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
        for (int k0 = 0; k0 < K; k0 += SIMT_BK) {
#pragma unroll
            for (int e = 0; e < SIMT_BM * SIMT_BK / SIMT_THREADS; ++e) {
                const int idx = tid + SIMT_THREADS * e;
                // Consecutive threads walk the operand's contiguous dimension (coalesced).
                const int ii = ta ? (idx & 63) : (idx >> 4);
                int kk = ta ? (idx >> 6) : (idx & 15);
                int gi = m0 + ii, gk = k0 + kk;
                float v = 0.0f;
                if (gi < M && gk < K) v = to_f32(Ab[ta ? (i64)gk * lda + gi : (i64)gi * lda + gk]);
                As[kk][ii] = v;
                const int jj = tb ? (idx >> 4) : (idx & 63);
                kk = tb ? (idx & 15) : (idx >> 6);
                const int gj = n0 + jj;
                gk = k0 + kk;
                v = 0.0f;
                if (gj < N && gk < K) v = to_f32(Bb[tb ? (i64)gj * ldb + gk : (i64)gk * ldb + gj]);
                Bs[kk][jj] = v;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < SIMT_BK; ++kk) {
                float a[4], b[4];
#pragma unroll
                for (int r = 0; r < 4; ++r) a[r] = As[kk][ty + 16 * r];
#pragma unroll
                for (int c = 0; c < 4; ++c) b[c] = Bs[kk][tx + 16 * c];
#pragma unroll
                for (int r = 0; r < 4; ++r)
#pragma unroll
                    for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
            }
            __syncthreads();
        }
        T* Cb = C + (i64)bz * sc;
        T* Pb = pre != nullptr ? pre + (i64)bz * sc : nullptr;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int i = m0 + ty + 16 * r;
            if (i >= M) continue;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int j = n0 + tx + 16 * c;
                if (j < N) gemm_epilogue2<T>(Cb, Pb, bias, (i64)i * ldc + j, j, false, acc[r][c], 0.0f, accumulate, epi);
            }
        }
    }
}

#define GEMM_SIMT_KERNEL(T, sfx)                                                                                     \
    extern "C" __global__ void __launch_bounds__(SIMT_THREADS) gemm_simt_##sfx(                                      \
        const T* __restrict__ A, const T* __restrict__ B, T* C, const T* bias, T* pre, int M, int N, int K, i64 lda, \
        i64 ldb, i64 ldc, i64 sa, i64 sb, i64 sc, int batch, int ta, int tb, int accumulate, int epi) {              \
        gemm_simt<T>(A, B, C, bias, pre, M, N, K, lda, ldb, ldc, sa, sb, sc, batch, ta, tb, accumulate, epi);        \
    }
GEMM_SIMT_KERNEL(float, f32)
GEMM_SIMT_KERNEL(bf16, bf16)

// ---------------------------------------------------------------------------------------------
// 2. Tensor cores: mma.sync + cp.async + ldmatrix. PTX wrappers first.

__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

// 16-byte global -> shared copy that bypasses L1; bytes past src_bytes (0..16) are zero-filled,
// so edge tiles need no separate path. src must be a valid address even when src_bytes is 0.
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm_x4(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// f32 -> TF32, round to nearest (ties away), as cuBLAS' TF32 mode; the mma would otherwise
// just drop the low 13 bits.
__device__ __forceinline__ u32 to_tf32(u32 f32_bits) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(f32_bits)));
    return r;
}

__device__ __forceinline__ void mma_16x8(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2], bf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_16x8(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2], float) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Elements per 16-byte chunk and k per tile: a k-major tile row is 64 bytes either way.
template <typename T> struct MmaType;
template <> struct MmaType<bf16> {
    static constexpr int EPC = 8, BK = 32, KSTEP = 16;
};
template <> struct MmaType<float> {
    static constexpr int EPC = 4, BK = 16, KSTEP = 8;
};

// Byte offset of 16-byte chunk c of row r in a k-major tile (64-byte rows).
__device__ __forceinline__ u32 kmaj_off(int r, int c) { return (u32)(r * 64 + ((c ^ ((r >> 1) & 3)) << 4)); }

// Mn-major tiles: BK rows (k) of ROWS elements. bf16 rows are exactly ROWS * 2 bytes with the
// XOR swizzle; f32 rows are padded by 8 floats instead (see the file comment), which keeps
// every fragment address a per-lane base plus a compile-time offset.
template <typename T, int ROWS>
struct MnTile {
    static constexpr int PITCH = sizeof(T) == 2 ? ROWS * 2 : (ROWS + 8) * 4;
    static constexpr int BYTES = MmaType<T>::BK * PITCH;
};
template <typename T, int ROWS, bool KMAJOR>
struct Tile {
    static constexpr int BYTES = KMAJOR ? ROWS * 64 : MnTile<T, ROWS>::BYTES;
};

// Byte offset of 16-byte chunk c of row r in an mn-major tile.
template <typename T, int ROWS>
__device__ __forceinline__ u32 mnmaj_off(int r, int c) {
    constexpr int P = MnTile<T, ROWS>::PITCH;
    return sizeof(T) == 2 ? (u32)(r * P + ((c ^ (r & 7)) << 4)) : (u32)(r * P + (c << 4));
}

// One f32 of an mn-major f32 tile, as TF32: row r (k), element e (m or n) of the row.
template <int ROWS>
__device__ __forceinline__ u32 lds_tf32(const unsigned char* tile, int r, int e) {
    return to_tf32(*reinterpret_cast<const u32*>(tile + r * MnTile<float, ROWS>::PITCH + e * 4));
}

// Issues the cp.async copies of one operand tile: ROWS x 64 B (k-major) or BK x ROWS elements
// (mn-major), rows [r0, r0 + ROWS) of m (or n) and k in [k0, k0 + BK), clipped to rows < R and
// k < kend by zero-fill.
template <typename T, int ROWS, int THREADS, bool KMAJOR>
__device__ __forceinline__ void load_tile(u32 dst, const T* src, i64 ld, int r0, int R, int k0, int kend, int tid) {
    constexpr int EPC = MmaType<T>::EPC;
    constexpr int CHUNKS = ROWS * 4;  // ROWS * 64 bytes
    static_assert(CHUNKS % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
    for (int i = 0; i < CHUNKS / THREADS; ++i) {
        const int c = tid + i * THREADS;
        int valid;
        i64 off;
        u32 so;
        if (KMAJOR) {
            const int r = c >> 2, ch = c & 3;
            const int gr = r0 + r, gk = k0 + ch * EPC;
            valid = gr < R ? min(EPC, kend - gk) : 0;
            off = (i64)gr * ld + gk;
            so = kmaj_off(r, ch);
        } else {
            constexpr int CPR = ROWS / EPC;  // chunks per k-row
            const int r = c / CPR, ch = c % CPR;
            const int gk = k0 + r, gr = r0 + ch * EPC;
            valid = gk < kend ? min(EPC, R - gr) : 0;
            off = (i64)gk * ld + gr;
            so = mnmaj_off<T, ROWS>(r, ch);
        }
        cp_async16(dst + so, valid > 0 ? (const void*)(src + off) : (const void*)src, valid > 0 ? valid * (int)sizeof(T) : 0);
    }
}

template <typename T, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool TA, bool TB>
__device__ __forceinline__ void gemm_mma(const T* __restrict__ A, const T* __restrict__ B, T* C, const T* bias, T* pre,
                                         float* work, int M, int N, int K, i64 lda, i64 ldb, i64 ldc, i64 sa, i64 sb,
                                         i64 sc, int batch, int accumulate, int epi, int k_split) {
    constexpr int BK = MmaType<T>::BK, KSTEP = MmaType<T>::KSTEP;
    constexpr bool BF = sizeof(T) == 2;
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
    constexpr int MI = WM / 16, NI = WN / 8;
    constexpr int A_BYTES = Tile<T, BM, !TA>::BYTES, STAGE_BYTES = A_BYTES + Tile<T, BN, TB>::BYTES;
    static_assert(MI >= 1 && NI % 2 == 0, "warp tile: whole 16-row and 16-column fragments");
    static_assert(BM >= 64 && BN >= 64, "mn-major tile rows need >= 8 chunks for the swizzle");
    constexpr int EPI_LD = WN + 8;  // staging row stride (floats): 8-byte stores conflict-free
    static_assert(WARPS_M * WARPS_N * 16 * EPI_LD * 4 <= STAGES * STAGE_BYTES, "staging fits in the ring");

    extern __shared__ __align__(128) unsigned char smem[];
    const u32 sbase = smem_addr(smem);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3, j = lane >> 3;  // mma groups; ldmatrix matrix of this lane
    const int wm0 = (warp % WARPS_M) * WM, wn0 = (warp / WARPS_M) * WN;

    // Grouped rasterisation: 8 consecutive blocks share a column of B panels and walk 8 rows of
    // A panels, so the operands a wave touches stay in L2.
    const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
    const int group_size = 8 * tiles_n;
    const int group = blockIdx.x / group_size, first_m = group * 8;
    const int group_m = min(tiles_m - first_m, 8);
    const int in_group = blockIdx.x % group_size;
    const int m0 = (first_m + in_group % group_m) * BM, n0 = (in_group / group_m) * BN;
    (void)tiles_m;

    const int split = blockIdx.y;
    const int kbeg = split * k_split, kend = min(K, kbeg + k_split);
    const int KT = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;

    for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
        const T* Ab = A + (i64)bz * sa;
        const T* Bb = B + (i64)bz * sb;
        auto load_stage = [&](int stage, int kt) {
            const u32 s = sbase + stage * STAGE_BYTES;
            const int k0 = kbeg + kt * BK;
            load_tile<T, BM, THREADS, !TA>(s, Ab, lda, m0, M, k0, kend, tid);
            load_tile<T, BN, THREADS, TB>(s + A_BYTES, Bb, ldb, n0, N, k0, kend, tid);
        };

        float acc[MI][NI][4];
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
            for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.0f;

        // Prologue: tiles 0 .. STAGES-2 in flight, one commit group each (empty past KT).
#pragma unroll
        for (int s = 0; s < STAGES - 1; ++s) {
            if (s < KT) load_stage(s, s);
            cp_async_commit();
        }
        for (int kt = 0; kt < KT; ++kt) {
            // Groups committed so far: STAGES-1 + kt; leaving STAGES-2 pending means tile kt
            // has landed (for this thread; the barrier makes it so for all). The barrier also
            // proves every warp finished tile kt-1, whose stage the next copy overwrites.
            cp_async_wait<STAGES - 2>();
            __syncthreads();
            const int next = kt + STAGES - 1;
            if (next < KT) load_stage(next % STAGES, next);
            cp_async_commit();

            const u32 sA = sbase + (kt % STAGES) * STAGE_BYTES, sB = sA + A_BYTES;
            const unsigned char* tA = smem + (kt % STAGES) * STAGE_BYTES;
            const unsigned char* tB = tA + A_BYTES;
#pragma unroll
            for (int ks = 0; ks < BK / KSTEP; ++ks) {
                u32 af[MI][4], bfr[NI][2];
#pragma unroll
                for (int mi = 0; mi < MI; ++mi) {
                    const int mb = wm0 + mi * 16;
                    if (!TA) {
                        // Matrices: (m 0-7 | 8-15) x (k chunk 2ks | 2ks+1) -> a0..a3 for both
                        // bf16 (m16n8k16) and TF32 (m16n8k8, 4-byte elements).
                        ldsm_x4(af[mi], sA + kmaj_off(mb + (lane & 7) + (j & 1) * 8, ks * 2 + (j >> 1)));
                        if (!BF) {
#pragma unroll
                            for (int q = 0; q < 4; ++q) af[mi][q] = to_tf32(af[mi][q]);
                        }
                    } else if (BF) {
                        // Rows k (0-7 | 8-15) x chunk of m (0-7 | 8-15), transposed on load.
                        const int kr = ks * 16 + (lane & 7) + (j >> 1) * 8;
                        ldsm_x4_trans(af[mi], sA + mnmaj_off<T, BM>(kr, mb / 8 + (j & 1)));
                    } else {
                        af[mi][0] = lds_tf32<BM>(tA, ks * 8 + t, mb + g);
                        af[mi][1] = lds_tf32<BM>(tA, ks * 8 + t, mb + g + 8);
                        af[mi][2] = lds_tf32<BM>(tA, ks * 8 + t + 4, mb + g);
                        af[mi][3] = lds_tf32<BM>(tA, ks * 8 + t + 4, mb + g + 8);
                    }
                }
#pragma unroll
                for (int nj = 0; nj < NI / 2; ++nj) {
                    const int nb = wn0 + nj * 16;
                    if (TB || BF) {
                        u32 r[4];
                        if (TB) {
                            // Matrices: (n 0-7, k lo), (n 0-7, k hi), (n 8-15, k lo), (n 8-15, k hi).
                            ldsm_x4(r, sB + kmaj_off(nb + (lane & 7) + (j >> 1) * 8, ks * 2 + (j & 1)));
                        } else {
                            // Rows k (0-7 | 8-15) x chunk of n (0-7 | 8-15), same matrix order.
                            const int kr = ks * 16 + (lane & 7) + (j & 1) * 8;
                            ldsm_x4_trans(r, sB + mnmaj_off<T, BN>(kr, nb / 8 + (j >> 1)));
                        }
                        if (!BF) {
#pragma unroll
                            for (int q = 0; q < 4; ++q) r[q] = to_tf32(r[q]);
                        }
                        bfr[2 * nj][0] = r[0];
                        bfr[2 * nj][1] = r[1];
                        bfr[2 * nj + 1][0] = r[2];
                        bfr[2 * nj + 1][1] = r[3];
                    } else {
#pragma unroll
                        for (int q = 0; q < 2; ++q) {
                            bfr[2 * nj + q][0] = lds_tf32<BN>(tB, ks * 8 + t, nb + q * 8 + g);
                            bfr[2 * nj + q][1] = lds_tf32<BN>(tB, ks * 8 + t + 4, nb + q * 8 + g);
                        }
                    }
                }
#pragma unroll
                for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                    for (int ni = 0; ni < NI; ++ni) mma_16x8(acc[mi][ni], af[mi], bfr[ni], T());
            }
        }
        cp_async_wait<0>();

        // Epilogue through shared memory, one 16-row slice of the warp tile at a time: the warp
        // parks acc[mi] in its own staging rows, then walks them row by row, each lane finishing
        // two adjacent columns. Rolled loops keep the (inlined GELU) code and its registers small,
        // and a warp's stores cover whole contiguous row segments.
        __syncthreads();  // every warp is done reading the pipeline stages
        float* stage = reinterpret_cast<float*>(smem) + warp * (16 * EPI_LD);
        constexpr int LPR = WN / 2, RPI = 32 / LPR;  // lanes per row, rows per iteration
        T* Cb = C + (i64)bz * sc;
        T* Pb = pre != nullptr ? pre + (i64)bz * sc : nullptr;
        const i64 w_off = ((i64)split * batch + bz) * M * N;  // this block's partial sums (split-K)
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
            // Accumulator (mi, ni): c0, c1 at (row g, columns 2t, 2t+1), c2, c3 at row g + 8.
#pragma unroll
            for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    *reinterpret_cast<float2*>(stage + (g + 8 * h) * EPI_LD + ni * 8 + 2 * t) =
                        make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
            __syncwarp();
#pragma unroll 1
            for (int r = lane / LPR; r < 16; r += RPI) {
                const int cl = 2 * (lane % LPR);
                const int row = m0 + wm0 + mi * 16 + r, col = n0 + wn0 + cl;
                if (row < M && col < N) {
                    const float2 v = *reinterpret_cast<const float2*>(stage + r * EPI_LD + cl);
                    if (gridDim.y == 1) {
                        gemm_epilogue2<T>(Cb, Pb, bias, (i64)row * ldc + col, col, col + 1 < N, v.x, v.y, accumulate, epi);
                    } else {
                        float* w = work + w_off + (i64)row * N + col;
                        if (col + 1 < N && aligned_to(w, 8)) {
                            store2(w, v.x, v.y);
                        } else {
                            w[0] = v.x;
                            if (col + 1 < N) w[1] = v.y;
                        }
                    }
                }
            }
            __syncwarp();  // reads done before the next slice overwrites the staging rows
        }
        __syncthreads();  // the next batch entry's prologue reuses the stages
    }
}

#define GEMM_MMA_KERNEL(name, T, BM, BN, WM_, WN_, ST, MINB, TA, TB)                                                \
    extern "C" __global__ void __launch_bounds__(WM_* WN_ * 32, MINB)                                               \
        name(const T* __restrict__ A, const T* __restrict__ B, T* C, const T* bias, T* pre, float* work, int M,     \
             int N, int K, i64 lda, i64 ldb, i64 ldc, i64 sa, i64 sb, i64 sc, int batch, int accumulate, int epi,   \
             int k_split) {                                                                                         \
        gemm_mma<T, BM, BN, WM_, WN_, ST, TA, TB>(A, B, C, bias, pre, work, M, N, K, lda, ldb, ldc, sa, sb, sc,     \
                                                  batch, accumulate, epi, k_split);                                 \
    }
#define GEMM_MMA_LAYOUTS(cfg, T, sfx, BM, BN, WM_, WN_, ST, MINB)                               \
    GEMM_MMA_KERNEL(gemm_mma_##cfg##_nn_##sfx, T, BM, BN, WM_, WN_, ST, MINB, false, false) \
    GEMM_MMA_KERNEL(gemm_mma_##cfg##_nt_##sfx, T, BM, BN, WM_, WN_, ST, MINB, false, true)  \
    GEMM_MMA_KERNEL(gemm_mma_##cfg##_tn_##sfx, T, BM, BN, WM_, WN_, ST, MINB, true, false)  \
    GEMM_MMA_KERNEL(gemm_mma_##cfg##_tt_##sfx, T, BM, BN, WM_, WN_, ST, MINB, true, true)
#define GEMM_MMA_CONFIGS(T, sfx)                                \
    GEMM_MMA_LAYOUTS(l, T, sfx, 128, 256, 2, 4, GEMM_STAGES, 1) \
    GEMM_MMA_LAYOUTS(m, T, sfx, 128, 128, 2, 2, GEMM_STAGES, 2) \
    GEMM_MMA_LAYOUTS(s, T, sfx, 64, 64, 2, 2, GEMM_STAGES, 4)

// Shared memory per block: GEMM_STAGES * (BM + BN) * 64 bytes (l: 96 KiB, m: 64 KiB, s: 32 KiB).
#define GEMM_STAGES 4
GEMM_MMA_CONFIGS(float, f32)
GEMM_MMA_CONFIGS(bf16, bf16)

// Split-K: C = epilogue(sum over splits, in order, of work[s][b][i][j]).
template <typename T>
__device__ __forceinline__ void gemm_splitk_reduce(const float* __restrict__ work, T* C, const T* bias, T* pre, int M,
                                                   int N, int batch, i64 ldc, i64 sc, int splits, int accumulate,
                                                   int epi) {
    const i64 per_split = (i64)batch * M * N, mn = (i64)M * N;
    for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < per_split; idx += (i64)gridDim.x * blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < splits; ++s) v += work[s * per_split + idx];
        const i64 bz = idx / mn, rem = idx - bz * mn, i = rem / N, j = rem - i * N;
        gemm_epilogue2<T>(C + bz * sc, pre != nullptr ? pre + bz * sc : nullptr, bias, i * ldc + j, (int)j, false, v,
                          0.0f, accumulate, epi);
    }
}

#define GEMM_REDUCE_KERNEL(T, sfx)                                                                                  \
    extern "C" __global__ void gemm_splitk_reduce_##sfx(const float* __restrict__ work, T* C, const T* bias, T* pre, \
                                                        int M, int N, int batch, i64 ldc, i64 sc, int splits,        \
                                                        int accumulate, int epi) {                                  \
        gemm_splitk_reduce<T>(work, C, bias, pre, M, N, batch, ldc, sc, splits, accumulate, epi);                   \
    }
GEMM_REDUCE_KERNEL(float, f32)
GEMM_REDUCE_KERNEL(bf16, bf16)
