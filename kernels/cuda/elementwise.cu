// Elementwise ops: binary add/sub/mul/div (dense, or through strides for broadcasts), their
// backward for mul/div, scale, gradient accumulation (+=), and the pointwise activations
// gelu_tanh, gelu_erf, tanh, relu with their backward. Same formulas as kernels/src/cpu/binary.rs
// and kernels/src/cpu/activation.rs; storage f32 or bf16, arithmetic in f32.
//
// Kernels (launchers in kernels/src/cuda/elementwise.rs):
//   {add,sub,mul,div}_fwd_{f32,bf16}                    dense: out = a op b
//   {add,sub,mul,div}_fwd_strided_{u32,u64}_{f32,bf16}  a, b through Dims6 strides (0 = broadcast)
//   {mul,div}_bwd_{f32,bf16}, scale_{f32,bf16}, add_assign_{f32,bf16}
//   {gelu_tanh,gelu_erf,tanh,relu}_{fwd,bwd}_{f32,bf16}
// Dense kernels: grid-stride loop over 16-byte vectors (4 f32 or 8 bf16) when every pointer is
// 16-byte aligned (checked on the device, uniform across the grid), then a scalar tail; otherwise
// all scalar. Each element is read and written by the same thread, so out may alias an input.

// ---------------------------------------------------------------------------------------------
// 16-byte vectors of T as floats.

// f[0..N) = the N elements at p (p 16-byte aligned).

#define GRID_TID ((long long)blockIdx.x * blockDim.x + threadIdx.x)
#define GRID_STEP ((long long)gridDim.x * blockDim.x)

// Dense driver: for every i < n, body(i) on scalars; vbody(v) handles elements [v*N, v*N + N)
// when `vec` (all pointers aligned). Grid-stride over vectors, then the tail.
template <typename T, typename Scalar, typename Vector>
__device__ __forceinline__ void dense_loop(long long n, bool vec, Scalar body, Vector vbody) {
    constexpr int N = Vec16<T>::N;
    long long done = 0;
    if (vec) {
        const long long nv = n / N;
        for (long long v = GRID_TID; v < nv; v += GRID_STEP) vbody(v * N);
        done = nv * N;
    }
    for (long long i = done + GRID_TID; i < n; i += GRID_STEP) body(i);
}

// ---------------------------------------------------------------------------------------------
// Binary forward.

struct OpAdd { static __device__ __forceinline__ float f(float x, float y) { return x + y; } };
struct OpSub { static __device__ __forceinline__ float f(float x, float y) { return x - y; } };
struct OpMul { static __device__ __forceinline__ float f(float x, float y) { return x * y; } };
struct OpDiv { static __device__ __forceinline__ float f(float x, float y) { return x / y; } };

// out, a, b: (n)
template <typename Op, typename T>
__device__ __forceinline__ void binary_dense(T* out, const T* a, const T* b, long long n) {
    constexpr int N = Vec16<T>::N;
    dense_loop<T>(
        n, aligned16(out) && aligned16(a) && aligned16(b),
        [&](long long i) { out[i] = from_f32<T>(Op::f(to_f32(a[i]), to_f32(b[i]))); },
        [&](long long i) {
            float x[N], y[N];
            load16(a + i, x);
            load16(b + i, y);
#pragma unroll
            for (int j = 0; j < N; ++j) x[j] = Op::f(x[j], y[j]);
            store16(out + i, x);
        });
}

// out: (prod ad.shape) dense; a through ad, b through bd (bd.shape == ad.shape). out must not
// alias a broadcast input.
template <typename Op, typename T, typename I>
__device__ __forceinline__ void binary_strided(T* out, const T* a, const Dims6& ad, const T* b, const Dims6& bd, I n) {
    const I step = (I)gridDim.x * blockDim.x;
    for (I idx = (I)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += step) {
        I c[6];
        unravel(idx, ad, c);
        out[idx] = from_f32<T>(Op::f(to_f32(a[offset_of(c, ad)]), to_f32(b[offset_of(c, bd)])));
    }
}

#define BINARY(NAME, OP)                                                                              \
    extern "C" __global__ void NAME##_fwd_f32(float* out, const float* a, const float* b, long long n) { \
        binary_dense<OP, float>(out, a, b, n);                                                        \
    }                                                                                                 \
    extern "C" __global__ void NAME##_fwd_bf16(bf16* out, const bf16* a, const bf16* b, long long n) { \
        binary_dense<OP, bf16>(out, a, b, n);                                                         \
    }                                                                                                 \
    extern "C" __global__ void NAME##_fwd_strided_u32_f32(float* out, const float* a, Dims6 ad, const float* b, \
                                                          Dims6 bd, u32 n) {                          \
        binary_strided<OP, float, u32>(out, a, ad, b, bd, n);                                         \
    }                                                                                                 \
    extern "C" __global__ void NAME##_fwd_strided_u64_f32(float* out, const float* a, Dims6 ad, const float* b, \
                                                          Dims6 bd, u64 n) {                          \
        binary_strided<OP, float, u64>(out, a, ad, b, bd, n);                                         \
    }                                                                                                 \
    extern "C" __global__ void NAME##_fwd_strided_u32_bf16(bf16* out, const bf16* a, Dims6 ad, const bf16* b, \
                                                           Dims6 bd, u32 n) {                         \
        binary_strided<OP, bf16, u32>(out, a, ad, b, bd, n);                                          \
    }                                                                                                 \
    extern "C" __global__ void NAME##_fwd_strided_u64_bf16(bf16* out, const bf16* a, Dims6 ad, const bf16* b, \
                                                           Dims6 bd, u64 n) {                         \
        binary_strided<OP, bf16, u64>(out, a, ad, b, bd, n);                                          \
    }
BINARY(add, OpAdd)
BINARY(sub, OpSub)
BINARY(mul, OpMul)
BINARY(div, OpDiv)

// ---------------------------------------------------------------------------------------------
// Binary backward, scale, accumulate. All dense (n).

// da = dout * b, db = dout * a (overwritten)
struct MulBwd {
    static __device__ __forceinline__ void f(float a, float b, float g, float& da, float& db) {
        da = g * b;
        db = g * a;
    }
};
// da = dout / b, db = -dout * a / b^2, as the CPU reference: inv = 1/b, db = ((-g * a) * inv) * inv
struct DivBwd {
    static __device__ __forceinline__ void f(float a, float b, float g, float& da, float& db) {
        const float inv = 1.0f / b;
        da = g * inv;
        db = -g * a * inv * inv;
    }
};

template <typename Op, typename T>
__device__ __forceinline__ void binary_bwd(T* da, T* db, const T* a, const T* b, const T* dout, long long n) {
    constexpr int N = Vec16<T>::N;
    const bool vec = aligned16(da) && aligned16(db) && aligned16(a) && aligned16(b) && aligned16(dout);
    dense_loop<T>(
        n, vec,
        [&](long long i) {
            float x, y;
            Op::f(to_f32(a[i]), to_f32(b[i]), to_f32(dout[i]), x, y);
            da[i] = from_f32<T>(x);
            db[i] = from_f32<T>(y);
        },
        [&](long long i) {
            float x[N], y[N], g[N];
            load16(a + i, x);
            load16(b + i, y);
            load16(dout + i, g);
#pragma unroll
            for (int j = 0; j < N; ++j) Op::f(x[j], y[j], g[j], x[j], y[j]);
            store16(da + i, x);
            store16(db + i, y);
        });
}

// out = k * x
template <typename T>
__device__ __forceinline__ void scale(T* out, const T* x, float k, long long n) {
    constexpr int N = Vec16<T>::N;
    dense_loop<T>(
        n, aligned16(out) && aligned16(x), [&](long long i) { out[i] = from_f32<T>(k * to_f32(x[i])); },
        [&](long long i) {
            float v[N];
            load16(x + i, v);
#pragma unroll
            for (int j = 0; j < N; ++j) v[j] = k * v[j];
            store16(out + i, v);
        });
}

// acc += x
template <typename T>
__device__ __forceinline__ void add_assign(T* acc, const T* x, long long n) {
    constexpr int N = Vec16<T>::N;
    dense_loop<T>(
        n, aligned16(acc) && aligned16(x), [&](long long i) { acc[i] = from_f32<T>(to_f32(acc[i]) + to_f32(x[i])); },
        [&](long long i) {
            float s[N], v[N];
            load16(acc + i, s);
            load16(x + i, v);
#pragma unroll
            for (int j = 0; j < N; ++j) s[j] = s[j] + v[j];
            store16(acc + i, s);
        });
}

#define PER_TYPE(T, SUF)                                                                                       \
    extern "C" __global__ void mul_bwd_##SUF(T* da, T* db, const T* a, const T* b, const T* dout, long long n) { \
        binary_bwd<MulBwd, T>(da, db, a, b, dout, n);                                                          \
    }                                                                                                          \
    extern "C" __global__ void div_bwd_##SUF(T* da, T* db, const T* a, const T* b, const T* dout, long long n) { \
        binary_bwd<DivBwd, T>(da, db, a, b, dout, n);                                                          \
    }                                                                                                          \
    extern "C" __global__ void scale_##SUF(T* out, const T* x, float k, long long n) { scale<T>(out, x, k, n); } \
    extern "C" __global__ void add_assign_##SUF(T* acc, const T* x, long long n) { add_assign<T>(acc, x, n); }
PER_TYPE(float, f32)
PER_TYPE(bf16, bf16)

// ---------------------------------------------------------------------------------------------
// Activations. As the AVX2 CPU versions, the GELUs are written without the cancellations of the
// textbook forms for negative x (1 + tanh(u), 1 + erf(x / sqrt 2)): these helpers are local to
// this file (common.cuh's gelu_* use the textbook forms).

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

// -2u, u = sqrt(2/pi) (x + 0.044715 x^3)
__device__ __forceinline__ float gelu_m2u(float x) { return -2.0f * SQRT_2_OVER_PI * x * (1.0f + GELU_CUBIC * x * x); }

struct GeluTanh {
    // 0.5 x (1 + tanh u) = x sigmoid(2u) = x / (1 + e^{-2u}); x -> -inf gives x / inf = -0.
    static __device__ __forceinline__ float fwd(float x) { return x / (1.0f + expf(gelu_m2u(x))); }
    // s = sigmoid(2u): 0.5 (1 + t) = s, 1 - t^2 = 4 s (1 - s), 1 - s = e s (no cancellation):
    // d/dx = s + 2 x s (1 - s) du/dx. -2u is capped at 88 so e stays finite (a NaN passes through).
    static __device__ __forceinline__ float grad(float x) {
        float m2u = gelu_m2u(x);
        m2u = m2u > 88.0f ? 88.0f : m2u;
        const float e = expf(m2u);
        const float s = 1.0f / (1.0f + e);
        const float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
        return s + 2.0f * x * s * (e * s) * du;
    }
};

struct GeluErf {
    // Phi(x) = 0.5 erfc(-x / sqrt 2): accurate in relative terms where Phi is tiny (x << 0).
    static __device__ __forceinline__ float cdf(float x) { return 0.5f * erfcf(-x * INV_SQRT2); }
    static __device__ __forceinline__ float fwd(float x) { return x * cdf(x); }
    // Phi(x) + x phi(x)
    static __device__ __forceinline__ float grad(float x) {
        const float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
        return cdf(x) + x * pdf;
    }
};

struct Tanh {
    static __device__ __forceinline__ float fwd(float x) { return tanhf(x); }
    // from the saved OUTPUT y: 1 - y^2
    static __device__ __forceinline__ float grad(float y) { return 1.0f - y * y; }
};

struct Relu {
    // x > 0 ? x : 0 (NaN -> 0, as the CPU code)
    static __device__ __forceinline__ float fwd(float x) { return x > 0.0f ? x : 0.0f; }
};

// out = f(x)
template <typename Act, typename T>
__device__ __forceinline__ void unary_fwd(T* out, const T* x, long long n) {
    constexpr int N = Vec16<T>::N;
    dense_loop<T>(
        n, aligned16(out) && aligned16(x), [&](long long i) { out[i] = from_f32<T>(Act::fwd(to_f32(x[i]))); },
        [&](long long i) {
            float v[N];
            load16(x + i, v);
#pragma unroll
            for (int j = 0; j < N; ++j) v[j] = Act::fwd(v[j]);
            store16(out + i, v);
        });
}

// dx = dout * f'(saved), through Act::bwd (below)
template <typename Act, typename T>
__device__ __forceinline__ void unary_bwd(T* dx, const T* saved, const T* dout, long long n) {
    constexpr int N = Vec16<T>::N;
    dense_loop<T>(
        n, aligned16(dx) && aligned16(saved) && aligned16(dout),
        [&](long long i) { dx[i] = from_f32<T>(Act::bwd(to_f32(saved[i]), to_f32(dout[i]))); },
        [&](long long i) {
            float s[N], g[N];
            load16(saved + i, s);
            load16(dout + i, g);
#pragma unroll
            for (int j = 0; j < N; ++j) s[j] = Act::bwd(s[j], g[j]);
            store16(dx + i, s);
        });
}

// dout * f'(saved), in the CPU references' order (dout * derivative).
struct GeluTanhB : GeluTanh { static __device__ __forceinline__ float bwd(float x, float g) { return g * grad(x); } };
struct GeluErfB : GeluErf { static __device__ __forceinline__ float bwd(float x, float g) { return g * grad(x); } };
struct TanhB : Tanh { static __device__ __forceinline__ float bwd(float y, float g) { return g * grad(y); } };
// dout where x > 0, else 0 (the subgradient at 0 is 0, as PyTorch)
struct ReluB : Relu { static __device__ __forceinline__ float bwd(float x, float g) { return x > 0.0f ? g : 0.0f; } };

#define ACTIVATION(NAME, A)                                                                                 \
    extern "C" __global__ void NAME##_fwd_f32(float* out, const float* x, long long n) {                    \
        unary_fwd<A, float>(out, x, n);                                                                     \
    }                                                                                                       \
    extern "C" __global__ void NAME##_fwd_bf16(bf16* out, const bf16* x, long long n) {                     \
        unary_fwd<A, bf16>(out, x, n);                                                                      \
    }                                                                                                       \
    extern "C" __global__ void NAME##_bwd_f32(float* dx, const float* saved, const float* dout, long long n) { \
        unary_bwd<A, float>(dx, saved, dout, n);                                                            \
    }                                                                                                       \
    extern "C" __global__ void NAME##_bwd_bf16(bf16* dx, const bf16* saved, const bf16* dout, long long n) { \
        unary_bwd<A, bf16>(dx, saved, dout, n);                                                             \
    }
ACTIVATION(gelu_tanh, GeluTanhB)
ACTIVATION(gelu_erf, GeluErfB)
ACTIVATION(tanh, TanhB)
ACTIVATION(relu, ReluB)
