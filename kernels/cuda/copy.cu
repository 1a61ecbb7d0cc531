// Data movement: strided gathers (Tensor::contiguous, materialised broadcasts), 2-D block copies
// (concat / split / narrow backward), dtype conversion and fill.
//
// Kernels (launchers in kernels/src/cuda/copy.rs):
//   copy_nd_w{1,2,4,8,16}_{u32,u64}  dst[dst_dims offset] = src[src_dims offset] over a shared shape.
//       Elements are moved as raw 1/2/4/8/16-byte words: the launcher widens the element when the
//       innermost dimension is contiguous and aligned (e.g. 4 f32 become one 16-byte word), so one
//       kernel serves every dtype. u32/u64 is the type of the index arithmetic (u32 when the element
//       count is below 2^31: 32-bit division is several times cheaper than 64-bit); offsets are
//       always 64-bit.
//   f32_to_bf16, bf16_to_f32           dense conversion (round to nearest even on the way down).
//   fill_{f32,bf16}                    dst[i] = value.
// Dense kernels use 16-byte accesses when every pointer is 16-byte aligned, and a grid-stride loop.

// dst: shape d.shape through dst_dims.stride; src: through src_dims.stride. n = prod(shape).
template <typename W, typename I>
__device__ __forceinline__ void copy_nd(W* dst, const Dims6& dst_dims, const W* src, const Dims6& src_dims, I n) {
    const I step = (I)gridDim.x * blockDim.x;
    for (I idx = (I)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += step) {
        I c[6];
        unravel(idx, src_dims, c);
        dst[offset_of(c, dst_dims)] = src[offset_of(c, src_dims)];
    }
}

// 8- and 16-byte words as the hardware's vector types (one ld/st.v2 / v4 each).
typedef unsigned char W1;
typedef unsigned short W2;
typedef unsigned int W4;
typedef uint2 W8;
typedef uint4 W16;

#define COPY_ND(W, I, NAME)                                                                          \
    extern "C" __global__ void NAME(W* dst, Dims6 dst_dims, const W* src, Dims6 src_dims, I n) {     \
        copy_nd<W, I>(dst, dst_dims, src, src_dims, n);                                              \
    }
COPY_ND(W1, u32, copy_nd_w1_u32)
COPY_ND(W1, u64, copy_nd_w1_u64)
COPY_ND(W2, u32, copy_nd_w2_u32)
COPY_ND(W2, u64, copy_nd_w2_u64)
COPY_ND(W4, u32, copy_nd_w4_u32)
COPY_ND(W4, u64, copy_nd_w4_u64)
COPY_ND(W8, u32, copy_nd_w8_u32)
COPY_ND(W8, u64, copy_nd_w8_u64)
COPY_ND(W16, u32, copy_nd_w16_u32)
COPY_ND(W16, u64, copy_nd_w16_u64)

// ---------------------------------------------------------------------------------------------
// Dense conversion and fill.

// dst: (n) bf16 = round(src: (n) f32). Vector step: 4 floats (16 B) in, 4 bf16 (8 B) out.
extern "C" __global__ void f32_to_bf16(bf16* dst, const float* src, long long n) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)gridDim.x * blockDim.x;
    long long done = 0;
    if (aligned16(src) && ((u64)dst & 7u) == 0) {
        const long long nv = n / 4;
        for (long long v = tid; v < nv; v += step) {
            const float4 f = reinterpret_cast<const float4*>(src)[v];
            uint2 w;
            w.x = pack_bf16x2(f.x, f.y);
            w.y = pack_bf16x2(f.z, f.w);
            reinterpret_cast<uint2*>(dst)[v] = w;
        }
        done = nv * 4;
    }
    for (long long i = done + tid; i < n; i += step) dst[i] = f32_to_bf16(src[i]);
}

// dst: (n) f32 = src: (n) bf16 (exact). Vector step: 8 bf16 (16 B) in, 8 floats (2 x 16 B) out.
extern "C" __global__ void bf16_to_f32(float* dst, const bf16* src, long long n) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)gridDim.x * blockDim.x;
    long long done = 0;
    if (aligned16(src) && aligned16(dst)) {
        const long long nv = n / 8;
        for (long long v = tid; v < nv; v += step) {
            const uint4 w = reinterpret_cast<const uint4*>(src)[v];
            float4 lo, hi;
            lo.x = __uint_as_float(w.x << 16);
            lo.y = __uint_as_float(w.x & 0xffff0000u);
            lo.z = __uint_as_float(w.y << 16);
            lo.w = __uint_as_float(w.y & 0xffff0000u);
            hi.x = __uint_as_float(w.z << 16);
            hi.y = __uint_as_float(w.z & 0xffff0000u);
            hi.z = __uint_as_float(w.w << 16);
            hi.w = __uint_as_float(w.w & 0xffff0000u);
            reinterpret_cast<float4*>(dst)[2 * v] = lo;
            reinterpret_cast<float4*>(dst)[2 * v + 1] = hi;
        }
        done = nv * 8;
    }
    for (long long i = done + tid; i < n; i += step) dst[i] = to_f32(src[i]);
}

// The bits of one element, repeated to fill a 32-bit word.
__device__ __forceinline__ u32 splat32(float v) { return __float_as_uint(v); }
__device__ __forceinline__ u32 splat32(bf16 v) { return (u32)v.bits | ((u32)v.bits << 16); }

// dst: (n) = value (rounded once to T). The 16-byte word holds 4 f32 or 8 bf16 copies.
template <typename T>
__device__ __forceinline__ void fill(T* dst, long long n, float value) {
    const T v = from_f32<T>(value);
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)gridDim.x * blockDim.x;
    constexpr int per = 16 / sizeof(T);
    long long done = 0;
    if (aligned16(dst)) {
        const long long nv = n / per;
        uint4 w;
        w.x = w.y = w.z = w.w = splat32(v);
        for (long long i = tid; i < nv; i += step) reinterpret_cast<uint4*>(dst)[i] = w;
        done = nv * per;
    }
    for (long long i = done + tid; i < n; i += step) dst[i] = v;
}

extern "C" __global__ void fill_f32(float* dst, long long n, float value) { fill<float>(dst, n, value); }
extern "C" __global__ void fill_bf16(bf16* dst, long long n, float value) { fill<bf16>(dst, n, value); }
