// float16 for the emulated backend: __half and __float2half_rn are in kernels/emulation.h.
#pragma once
#include "kernels/emulation.h"
