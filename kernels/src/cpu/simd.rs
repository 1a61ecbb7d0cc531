//! Small AVX2 helpers shared by the fast kernels (filled in by the SIMD kernels work).
