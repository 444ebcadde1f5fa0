// BSIM_HD marks small inline functions that the CPU path and the CUDA kernels share, so both compute the
// same thing from one definition.
#pragma once

#if defined(__CUDACC__)
#define BSIM_HD __host__ __device__
#else
#define BSIM_HD
#endif
