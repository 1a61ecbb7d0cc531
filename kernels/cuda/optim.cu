// Multi-tensor optimizer steps: every parameter tensor in one launch. The host uploads a table of
// OptDesc (one per tensor) followed by chunk_tensor[c] = the tensor of chunk c; block c updates
// elements [(c - first_chunk) * chunk, + chunk) of that tensor. Parameters, gradients and moments
// are f32 (master weights).
//
// The arithmetic is albert/src/optim.rs's, operation for operation, with the _rn intrinsics so
// that no multiply-add is contracted into an FMA (the CPU code has none): given the same inputs,
// AdamW gives the same bits as the CPU; LAMB differs only through the order of its f64 norm sums.
//
// Kernels (launchers in kernels/src/cuda/optim.rs):
//   adamw_step                    one launch.
//   lamb_update, lamb_ratio, lamb_apply   three launches: the update u (into the gradient buffer)
//       with per-chunk f64 partial sums of w^2 and u^2; per-tensor trust ratios from the partials in
//       a fixed order; w -= ratio * lr * u.
//   grad_sq_partial, sum_final_f64        sum of g^2 over all tensors (global-norm clipping), f64.

struct OptDesc {  // 64 bytes; written byte by byte by optim.rs
    u64 param, grad, m, v;
    long long numel;
    long long first_chunk;
    float decay;          // AdamW: 1 - lr * wd (rounded from f64); 1 = no decay
    float wd;             // LAMB: weight decay added to the update; 0 = none
    int use_trust_ratio;  // LAMB: 0 = ratio 1
    int pad;
};
static_assert(sizeof(OptDesc) == 64, "OptDesc must match optim.rs's 64-byte layout");

// This block's range [start, end) of its tensor.
__device__ __forceinline__ void chunk_range(const OptDesc& d, long long chunk, long long& start, long long& end) {
    start = ((long long)blockIdx.x - d.first_chunk) * chunk;
    end = min(d.numel, start + chunk);
}

// ---------------------------------------------------------------------------------------------
// AdamW (torch's): w *= decay; m += c1 (g - m); v = b2 v + c2 g g;
// w -= step_size * m / (sqrt(v) / bc2_sqrt + eps), with g = grad * grad_scale.

struct AdamW {
    float step_size, b2, c1, c2, bc2_sqrt, eps, grad_scale, decay;
    __device__ __forceinline__ void update(float& w, float grad, float& m, float& v) const {
        const float g = __fmul_rn(grad, grad_scale);
        w = __fmul_rn(w, decay);
        m = __fadd_rn(m, __fmul_rn(c1, __fsub_rn(g, m)));
        v = __fadd_rn(__fmul_rn(b2, v), __fmul_rn(__fmul_rn(c2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), eps);
        w = __fsub_rn(w, __fdiv_rn(__fmul_rn(step_size, m), denom));
    }
};

extern "C" __global__ void adamw_step(const OptDesc* descs, const int* chunk_tensor, long long chunk, float step_size,
                                      float b2, float c1, float c2, float bc2_sqrt, float eps, float grad_scale) {
    const OptDesc& d = descs[chunk_tensor[blockIdx.x]];
    long long start, end;
    chunk_range(d, chunk, start, end);
    float* w = reinterpret_cast<float*>(d.param) + start;
    const float* g = reinterpret_cast<const float*>(d.grad) + start;
    float* m = reinterpret_cast<float*>(d.m) + start;
    float* v = reinterpret_cast<float*>(d.v) + start;
    const AdamW k = {step_size, b2, c1, c2, bc2_sqrt, eps, grad_scale, d.decay};
    const long long len = end - start;
    long long done = 0;
    if (aligned16(w) && aligned16(g) && aligned16(m) && aligned16(v)) {
        const long long nv = len / 4;
        for (long long i = threadIdx.x; i < nv; i += blockDim.x) {
            float4 w4 = reinterpret_cast<float4*>(w)[i];
            const float4 g4 = reinterpret_cast<const float4*>(g)[i];
            float4 m4 = reinterpret_cast<float4*>(m)[i];
            float4 v4 = reinterpret_cast<float4*>(v)[i];
            k.update(w4.x, g4.x, m4.x, v4.x);
            k.update(w4.y, g4.y, m4.y, v4.y);
            k.update(w4.z, g4.z, m4.z, v4.z);
            k.update(w4.w, g4.w, m4.w, v4.w);
            reinterpret_cast<float4*>(w)[i] = w4;
            reinterpret_cast<float4*>(m)[i] = m4;
            reinterpret_cast<float4*>(v)[i] = v4;
        }
        done = nv * 4;
    }
    for (long long i = done + threadIdx.x; i < len; i += blockDim.x) {
        float wi = w[i], mi = m[i], vi = v[i];
        k.update(wi, g[i], mi, vi);
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }
}

// ---------------------------------------------------------------------------------------------
// Block sums in f64 (deterministic: fixed shuffle tree, then warp 0 over the warp sums).

__device__ __forceinline__ double warp_sum_d(double x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Sums a and b over the block; thread 0 gets the results. scratch: 64 doubles.
__device__ __forceinline__ void block_sum2_d(double& a, double& b, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    a = warp_sum_d(a);
    b = warp_sum_d(b);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = a;
        scratch[32 + warp] = b;
    }
    __syncthreads();
    a = lane < nwarps ? scratch[lane] : 0.0;
    b = lane < nwarps ? scratch[32 + lane] : 0.0;
    a = warp_sum_d(a);
    b = warp_sum_d(b);
}

// ---------------------------------------------------------------------------------------------
// LAMB (the official ALBERT/TF one): m = b1 m + c1 g; v = b2 v + c2 (g g); u = m / (sqrt(v) + eps);
// u += wd * w (wd = 0: not added); r = ||w|| / ||u|| (1 if a norm is 0 or use_trust_ratio == 0);
// w = f32(f64(w) - (r * lr) * f64(u)). g = grad * grad_scale.

struct LambMoments {
    float b1, b2, c1, c2, eps, grad_scale, wd;
    // Updates m, v; returns u.
    __device__ __forceinline__ float update(float w, float grad, float& m, float& v) const {
        const float g = __fmul_rn(grad, grad_scale);
        m = __fadd_rn(__fmul_rn(b1, m), __fmul_rn(c1, g));
        v = __fadd_rn(__fmul_rn(b2, v), __fmul_rn(c2, __fmul_rn(g, g)));
        float u = __fdiv_rn(m, __fadd_rn(__fsqrt_rn(v), eps));
        if (wd != 0.0f) u = __fadd_rn(u, __fmul_rn(wd, w));
        return u;
    }
};

// Launch 1: grad[i] = u[i]; m, v updated; partials[2c] = sum w^2, partials[2c + 1] = sum u^2 over
// chunk c (f64). Block 256 threads.
extern "C" __global__ void lamb_update(const OptDesc* descs, const int* chunk_tensor, long long chunk, float b1,
                                       float b2, float c1, float c2, float eps, float grad_scale, double* partials) {
    __shared__ double scratch[64];
    const OptDesc& d = descs[chunk_tensor[blockIdx.x]];
    long long start, end;
    chunk_range(d, chunk, start, end);
    const float* w = reinterpret_cast<const float*>(d.param) + start;
    float* g = reinterpret_cast<float*>(d.grad) + start;
    float* m = reinterpret_cast<float*>(d.m) + start;
    float* v = reinterpret_cast<float*>(d.v) + start;
    const LambMoments k = {b1, b2, c1, c2, eps, grad_scale, d.wd};
    const long long len = end - start;
    double w_sq = 0.0, u_sq = 0.0;
    long long done = 0;
    if (aligned16(w) && aligned16(g) && aligned16(m) && aligned16(v)) {
        const long long nv = len / 4;
        for (long long i = threadIdx.x; i < nv; i += blockDim.x) {
            const float4 w4 = reinterpret_cast<const float4*>(w)[i];
            float4 g4 = reinterpret_cast<float4*>(g)[i];
            float4 m4 = reinterpret_cast<float4*>(m)[i];
            float4 v4 = reinterpret_cast<float4*>(v)[i];
            g4.x = k.update(w4.x, g4.x, m4.x, v4.x);
            g4.y = k.update(w4.y, g4.y, m4.y, v4.y);
            g4.z = k.update(w4.z, g4.z, m4.z, v4.z);
            g4.w = k.update(w4.w, g4.w, m4.w, v4.w);
            w_sq += (double)w4.x * w4.x + (double)w4.y * w4.y + (double)w4.z * w4.z + (double)w4.w * w4.w;
            u_sq += (double)g4.x * g4.x + (double)g4.y * g4.y + (double)g4.z * g4.z + (double)g4.w * g4.w;
            reinterpret_cast<float4*>(g)[i] = g4;
            reinterpret_cast<float4*>(m)[i] = m4;
            reinterpret_cast<float4*>(v)[i] = v4;
        }
        done = nv * 4;
    }
    for (long long i = done + threadIdx.x; i < len; i += blockDim.x) {
        float mi = m[i], vi = v[i];
        const float wi = w[i];
        const float u = k.update(wi, g[i], mi, vi);
        g[i] = u;
        m[i] = mi;
        v[i] = vi;
        w_sq += (double)wi * wi;
        u_sq += (double)u * u;
    }
    block_sum2_d(w_sq, u_sq, scratch);
    if (threadIdx.x == 0) {
        partials[2 * (long long)blockIdx.x] = w_sq;
        partials[2 * (long long)blockIdx.x + 1] = u_sq;
    }
}

// Launch 2: one block per tensor: ratios[t] from its chunks' partials, summed in a fixed order.
extern "C" __global__ void lamb_ratio(const OptDesc* descs, const double* partials, double* ratios, long long chunk) {
    __shared__ double scratch[64];
    const OptDesc& d = descs[blockIdx.x];
    const long long nchunks = (d.numel + chunk - 1) / chunk;
    double w_sq = 0.0, u_sq = 0.0;
    for (long long c = threadIdx.x; c < nchunks; c += blockDim.x) {
        w_sq += partials[2 * (d.first_chunk + c)];
        u_sq += partials[2 * (d.first_chunk + c) + 1];
    }
    block_sum2_d(w_sq, u_sq, scratch);
    if (threadIdx.x == 0) {
        const double w_norm = sqrt(w_sq), u_norm = sqrt(u_sq);
        // NaN norms compare false: ratio 1, as the CPU code
        ratios[blockIdx.x] = (d.use_trust_ratio && w_norm > 0.0 && u_norm > 0.0) ? w_norm / u_norm : 1.0;
    }
}

// Launch 3: w = f32(f64(w) - (ratio * lr) * f64(u)), u read from the gradient buffer. lr comes as
// the bits of an f64 (the launcher's argument types have no f64).
extern "C" __global__ void lamb_apply(const OptDesc* descs, const int* chunk_tensor, long long chunk,
                                      const double* ratios, u64 lr_bits) {
    const double lr = __longlong_as_double((long long)lr_bits);
    const int t = chunk_tensor[blockIdx.x];
    const OptDesc& d = descs[t];
    long long start, end;
    chunk_range(d, chunk, start, end);
    float* w = reinterpret_cast<float*>(d.param) + start;
    const float* u = reinterpret_cast<const float*>(d.grad) + start;
    const double scale = __dmul_rn(ratios[t], lr);
    const long long len = end - start;
    long long done = 0;
    if (aligned16(w) && aligned16(u)) {
        const long long nv = len / 4;
        for (long long i = threadIdx.x; i < nv; i += blockDim.x) {
            float4 w4 = reinterpret_cast<float4*>(w)[i];
            const float4 u4 = reinterpret_cast<const float4*>(u)[i];
            w4.x = __double2float_rn(__dsub_rn((double)w4.x, __dmul_rn(scale, (double)u4.x)));
            w4.y = __double2float_rn(__dsub_rn((double)w4.y, __dmul_rn(scale, (double)u4.y)));
            w4.z = __double2float_rn(__dsub_rn((double)w4.z, __dmul_rn(scale, (double)u4.z)));
            w4.w = __double2float_rn(__dsub_rn((double)w4.w, __dmul_rn(scale, (double)u4.w)));
            reinterpret_cast<float4*>(w)[i] = w4;
        }
        done = nv * 4;
    }
    for (long long i = done + threadIdx.x; i < len; i += blockDim.x) {
        w[i] = __double2float_rn(__dsub_rn((double)w[i], __dmul_rn(scale, (double)u[i])));
    }
}

// ---------------------------------------------------------------------------------------------
// Sum of squares of every gradient, in f64: per-chunk partials, then one block in fixed order.

extern "C" __global__ void grad_sq_partial(const OptDesc* descs, const int* chunk_tensor, long long chunk,
                                           double* partials) {
    __shared__ double scratch[64];
    const OptDesc& d = descs[chunk_tensor[blockIdx.x]];
    long long start, end;
    chunk_range(d, chunk, start, end);
    const float* g = reinterpret_cast<const float*>(d.grad) + start;
    const long long len = end - start;
    double s = 0.0, unused = 0.0;
    long long done = 0;
    if (aligned16(g)) {
        const long long nv = len / 4;
        for (long long i = threadIdx.x; i < nv; i += blockDim.x) {
            const float4 g4 = reinterpret_cast<const float4*>(g)[i];
            s += (double)g4.x * g4.x + (double)g4.y * g4.y + (double)g4.z * g4.z + (double)g4.w * g4.w;
        }
        done = nv * 4;
    }
    for (long long i = done + threadIdx.x; i < len; i += blockDim.x) s += (double)g[i] * g[i];
    block_sum2_d(s, unused, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// out[0] = sum of partials[0..count), one block.
extern "C" __global__ void sum_final_f64(double* out, const double* partials, int count) {
    __shared__ double scratch[64];
    double s = 0.0, unused = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
    block_sum2_d(s, unused, scratch);
    if (threadIdx.x == 0) out[0] = s;
}
