// brir_gpu.cu compiled as C++ against the emulated CUDA runtime (this folder's cuda_runtime.h and cufft.h).
#include "kernels/brir_gpu.cu"
