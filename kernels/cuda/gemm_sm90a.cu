// gemm_sm90a.cu -- bf16 gemm on Hopper: TMA (cp.async.bulk.tensor) copies into a 4-stage
// shared-memory ring tracked by mbarriers, wgmma.mma_async from shared memory, the epilogue of
// gemm.cu (bias, GELU, pre-activations, accumulate) on the way out.
//
// UNPROVEN: written and compiled for sm_90a without a GPU, not yet run. kernels/src/cuda/gemm.rs
// takes it only with ALBERT_GEMM_WGMMA=1 on an sm_90 device; kernels/tests/cuda_gemm.rs then
// checks it against the CPU reference like every other kernel.
//
// Scope: bf16; A row-major [m, k] (not transposed); B either [n, k] (a Linear weight, trans_b:
// K-major like A) or [k, n] (N-major: wgmma reads it transposed, imm-trans-b = 1). Batch entries
// are the third dimension of the tensor maps (a shared operand gets a batch dimension of 1).
//
// Block: 128 x 256 outputs, 2 warpgroups (256 threads), each owning a 64 x 256 slab: one
// m64n256k16 wgmma per 16 of k, 128 f32 accumulators per thread. BK = 64 = one 128-byte swizzle
// row per m (or n) row. A stage is A 128 x 64 (16 KiB) + B 256 x 64 (32 KiB); 4 stages = 192 KiB,
// plus 1 KiB to align the ring to the swizzle's 1024-byte period.
// Shared layouts (what TMA's 128-byte swizzle writes and the wgmma descriptors describe):
//  - K-major (A, and B when trans_b): row r of the tile at r * 128 bytes, 8-row groups 1024 bytes
//    apart (stride byte offset 1024); the k16 steps start 32 bytes further each.
//  - N-major B: 4 boxes of 64 n x 64 k-rows (8 KiB each) side by side; within a box k-row r at
//    r * 128 bytes (8-row groups 1024 apart = stride byte offset), boxes 8 KiB apart (leading
//    byte offset); the k16 steps start 16 rows = 2048 bytes further each.
// Edges: TMA zero-fills whatever lies outside the tensor (m, n, k tails), so every k-tile is a
// full 64; the epilogue clips the stores.
//
// Pipeline (no warp specialisation; thread 0 issues the copies):
//   prologue: tiles 0 .. S-2 in flight, each arming full[stage] with the stage's byte count;
//   k-tile kt: wait for full[kt % S] (phase parity (kt / S) & 1); 4 wgmma k16 steps; commit;
//   wait until at most this group is pending (tile kt-1's wgmmas are done in this warpgroup);
//   __syncthreads (in both warpgroups); thread 0 refills stage (kt-1) % S with tile kt + S-1.
//   The wgmmas of tile kt keep the tensor cores busy across that barrier.

struct __align__(64) TmaDesc {
    u64 opaque[16];
};

#define WG_BM 128
#define WG_BN 256
#define WG_BK 64
#define WG_STAGES 4
#define WG_A_BYTES (WG_BM * WG_BK * 2)
#define WG_B_BYTES (WG_BN * WG_BK * 2)
#define WG_STAGE_BYTES (WG_A_BYTES + WG_B_BYTES)
#define WG_EPI_LD (WG_BN + 8)  // staging row stride (floats): 8-byte stores conflict-free
#define WG_THREADS 256

enum { EPI_NONE = 0, EPI_BIAS = 1, EPI_BIAS_GELU_TANH = 2, EPI_BIAS_GELU_ERF = 3 };

__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

// ---------------------------------------------------------------------------------------------
// Epilogue: the same arithmetic as gemm_epilogue2 in gemm.cu (bf16 storage).
__device__ __forceinline__ void wg_epilogue2(bf16* C, bf16* pre, const bf16* bias, long long off, int col, bool two,
                                             float v0, float v1, int accumulate, int epi) {
    const bool vec = two && ((u64)(C + off) & 3) == 0;
    if (accumulate) {
        if (vec) {
            const u32 old = *reinterpret_cast<const u32*>(C + off);
            v0 += __uint_as_float(old << 16);
            v1 += __uint_as_float(old & 0xffff0000u);
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
                if (two && ((u64)(pre + off) & 3) == 0) {
                    *reinterpret_cast<u32*>(pre + off) = pack_bf16x2(v0, v1);
                } else {
                    pre[off] = f32_to_bf16(v0);
                    if (two) pre[off + 1] = f32_to_bf16(v1);
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
        *reinterpret_cast<u32*>(C + off) = pack_bf16x2(v0, v1);
    } else {
        C[off] = f32_to_bf16(v0);
        if (two) C[off + 1] = f32_to_bf16(v1);
    }
}

// ---------------------------------------------------------------------------------------------
// PTX wrappers.

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Arrives (the one expected arrival) and adds `bytes` to the transaction count the phase waits for.
__device__ __forceinline__ void mbar_arrive_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ u64 global_ns() {
    u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
// Waits for the phase with this parity to complete. A phase that never completes (a copy that
// faulted, a byte count that does not match) traps after 2 s instead of hanging the process.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    u32 done = 0;
    u64 start = 0;
    for (int polls = 0; !done; ++polls) {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
        if (polls == 1024) start = global_ns();
        if (polls > 1024 && (polls & 1023) == 0 && global_ns() - start > 2000000000ull) asm volatile("trap;");
    }
}
// One box of a 3-D tensor map at element coordinates (x innermost, y, z) into shared memory;
// completion is counted on `bar`.
__device__ __forceinline__ void tma_load_3d(u32 dst, const TmaDesc* map, u32 bar, int x, int y, int z) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
            dst),
        "l"((u64)map), "r"(x), "r"(y), "r"(z), "r"(bar)
        : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from touching accumulator registers across the asynchronous wgmma.
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// wgmma shared-memory matrix descriptor: start address, leading and stride byte offsets (each
// >> 4, 14 bits), layout type 1 = 128-byte swizzle in bits 62-63; base offset 0 (1024-aligned
// tiles).
__device__ __forceinline__ u64 smem_desc(u32 addr, u32 lbo, u32 sbo) {
    return (u64)((addr & 0x3ffffu) >> 4) | ((u64)((lbo & 0x3ffffu) >> 4) << 16) |
           ((u64)((sbo & 0x3ffffu) >> 4) << 32) | (1ull << 62);
}

// D (64 x 256 per warpgroup, f32) += A (smem, K-major) x B (smem, K-major or N-major when TNSP_B).
template <int TNSP_B>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %131, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p, 1, 1, 0, %130;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(desc_a), "l"(desc_b), "n"(TNSP_B), "r"(1));
}

// ---------------------------------------------------------------------------------------------

template <int TNSP_B>
__device__ __forceinline__ void gemm_wgmma(const TmaDesc& map_a, const TmaDesc& map_b, bf16* C, const bf16* bias,
                                           bf16* pre, int M, int N, int K, i64 ldc, i64 sc, int a_batched,
                                           int b_batched, int accumulate, int epi) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    __shared__ __align__(8) u64 full[WG_STAGES];
    const u32 raw = smem_addr(smem_raw);
    const u32 pad = ((raw + 1023u) & ~1023u) - raw;
    unsigned char* smem = smem_raw + pad;
    const u32 sbase = raw + pad;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = tid >> 7;
    const int g = lane >> 2, t = lane & 3;

    // Grouped rasterisation, as in gemm.cu.
    const int tiles_m = (M + WG_BM - 1) / WG_BM, tiles_n = (N + WG_BN - 1) / WG_BN;
    const int group_size = 8 * tiles_n;
    const int first_m = (blockIdx.x / group_size) * 8;
    const int group_m = min(tiles_m - first_m, 8);
    const int in_group = blockIdx.x % group_size;
    const int m0 = (first_m + in_group % group_m) * WG_BM, n0 = (in_group / group_m) * WG_BN;
    const int bz = blockIdx.z;
    const int za = a_batched ? bz : 0, zb = b_batched ? bz : 0;
    const int KT = (K + WG_BK - 1) / WG_BK;

    if (tid == 0) {
        for (int s = 0; s < WG_STAGES; ++s) mbar_init(smem_addr(&full[s]), 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    auto issue = [&](int stage, int kt) {
        const u32 a_dst = sbase + stage * WG_STAGE_BYTES, b_dst = a_dst + WG_A_BYTES;
        const u32 bar = smem_addr(&full[stage]);
        mbar_arrive_expect_tx(bar, WG_STAGE_BYTES);  // whole boxes count, zero-filled parts included
        tma_load_3d(a_dst, &map_a, bar, kt * WG_BK, m0, za);
        if (TNSP_B) {
#pragma unroll
            for (int q = 0; q < WG_BN / 64; ++q) tma_load_3d(b_dst + q * (WG_BK * 128), &map_b, bar, n0 + 64 * q, kt * WG_BK, zb);
        } else {
            tma_load_3d(b_dst, &map_b, bar, kt * WG_BK, n0, zb);
        }
    };
    if (tid == 0) {
        for (int s = 0; s < WG_STAGES - 1 && s < KT; ++s) issue(s, s);
    }

    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

    for (int kt = 0; kt < KT; ++kt) {
        const int s = kt % WG_STAGES;
        mbar_wait(smem_addr(&full[s]), (u32)(kt / WG_STAGES) & 1u);
        const u32 a_tile = sbase + s * WG_STAGE_BYTES + wg * (64 * 128);  // this warpgroup's 64 rows
        const u32 b_tile = sbase + s * WG_STAGE_BYTES + WG_A_BYTES;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < WG_BK / 16; ++kk) {
            const u64 da = smem_desc(a_tile + kk * 32, 16, 1024);
            const u64 db = TNSP_B ? smem_desc(b_tile + kk * 2048, WG_BK * 128, 1024) : smem_desc(b_tile + kk * 32, 16, 1024);
            wgmma_m64n256k16<TNSP_B>(acc, da, db);
        }
        wgmma_commit();
        wgmma_wait<1>();
#pragma unroll
        for (int i = 0; i < 128; ++i) fence_operand(acc[i]);
        __syncthreads();
        const int next = kt + WG_STAGES - 1;
        if (tid == 0 && next < KT) issue(next % WG_STAGES, next);
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < 128; ++i) fence_operand(acc[i]);

    // Epilogue through shared memory (the ring is free: every issued tile was waited for and
    // consumed). Warp w holds rows 16 (w % 4) .. + 15 of its warpgroup's slab; accumulator
    // 4i + {0, 1} is (row g, columns 8i + 2t, + 1), 4i + {2, 3} the same at row g + 8.
    __syncthreads();
    float* stage = reinterpret_cast<float*>(smem) + warp * (16 * WG_EPI_LD);
#pragma unroll
    for (int i = 0; i < WG_BN / 8; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h)
            *reinterpret_cast<float2*>(stage + (g + 8 * h) * WG_EPI_LD + 8 * i + 2 * t) =
                make_float2(acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]);
    __syncwarp();
    bf16* Cb = C + (i64)bz * sc;
    bf16* Pb = pre != nullptr ? pre + (i64)bz * sc : nullptr;
    const int row0 = m0 + wg * 64 + (warp & 3) * 16;
#pragma unroll 1
    for (int r = 0; r < 16; ++r) {
        const int row = row0 + r;
        if (row >= M) break;
#pragma unroll 1
        for (int cl = 2 * lane; cl < WG_BN; cl += 64) {
            const int col = n0 + cl;
            if (col >= N) break;
            const float2 v = *reinterpret_cast<const float2*>(stage + r * WG_EPI_LD + cl);
            wg_epilogue2(Cb, Pb, bias, (i64)row * ldc + col, col, col + 1 < N, v.x, v.y, accumulate, epi);
        }
    }
}

#define GEMM_WGMMA_KERNEL(name, TNSP_B)                                                                           \
    extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)                                                   \
        name(const __grid_constant__ TmaDesc map_a, const __grid_constant__ TmaDesc map_b, bf16* C, const bf16* bias, \
             bf16* pre, int M, int N, int K, i64 ldc, i64 sc, int a_batched, int b_batched, int accumulate, int epi) { \
        gemm_wgmma<TNSP_B>(map_a, map_b, C, bias, pre, M, N, K, ldc, sc, a_batched, b_batched, accumulate, epi);  \
    }
// nt: B stored [n, k] (trans_b, K-major); nn: B stored [k, n] (N-major).
GEMM_WGMMA_KERNEL(gemm_wgmma_nt_bf16, 0)
GEMM_WGMMA_KERNEL(gemm_wgmma_nn_bf16, 1)
