// doa_gpu.cu compiled as C++ against the emulated CUDA runtime (this folder's cuda_runtime.h and cufft.h).
#include "kernels/doa_gpu.cu"
