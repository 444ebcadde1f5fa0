// The part of cuFFT that bsim's host code uses, on the CPU through FFTW (runtime.cpp): batched 1-D real
// transforms with cuFFT's layout rules (without inembed/onembed the basic layout: rows of n reals and n/2 + 1
// complex values) and its conventions (unnormalised; a complex-to-real transform may overwrite its input).
// An execution whose batch reaches outside the device allocations it starts in fails with
// CUFFT_EXEC_FAILED and says which on stderr.
#pragma once
#include "kernels/emulated_runtime/cuda_runtime.h"

typedef int cufftHandle;
typedef float cufftReal;
typedef float2 cufftComplex;
enum cufftResult {
  CUFFT_SUCCESS = 0,
  CUFFT_INVALID_PLAN = 1,
  CUFFT_ALLOC_FAILED = 2,
  CUFFT_INVALID_TYPE = 3,
  CUFFT_INVALID_VALUE = 4,
  CUFFT_INTERNAL_ERROR = 5,
  CUFFT_EXEC_FAILED = 6,
  CUFFT_SETUP_FAILED = 7,
  CUFFT_INVALID_SIZE = 8
};
enum cufftType { CUFFT_R2C = 0x2a, CUFFT_C2R = 0x2c, CUFFT_C2C = 0x29 };

cufftResult cufftPlanMany(cufftHandle* plan, int rank, int* n, int* inembed, int istride, int idist, int* onembed,
                          int ostride, int odist, cufftType type, int batch);
cufftResult cufftExecR2C(cufftHandle plan, cufftReal* in, cufftComplex* out);
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex* in, cufftReal* out);
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream);
cufftResult cufftDestroy(cufftHandle plan);
