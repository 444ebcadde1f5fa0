// cuFFT plans as RAII objects, and the check macro for cuFFT results (failures become RuntimeError).
#pragma once
#include <cufft.h>

#include <string>

#include "io/error.h"

#define BSIM_CUFFT_TRY(expr)                                                                                      \
  do {                                                                                                            \
    const cufftResult r_ = (expr);                                                                                \
    if (r_ != CUFFT_SUCCESS)                                                                                      \
      throw ::bsim::RuntimeError(std::string("cuFFT error ") + std::to_string(int(r_)) + " in " #expr " at " +    \
                                 __FILE__ + ":" + std::to_string(__LINE__));                                      \
  } while (0)

namespace bsim::cuda {

// A batched 1-D transform of n points: `batch` rows, idist / odist elements apart.
class FftPlan {
 public:
  FftPlan(int n, cufftType type, int batch, int idist, int odist) {
    BSIM_CUFFT_TRY(cufftPlanMany(&plan_, 1, &n, nullptr, 1, idist, nullptr, 1, odist, type, batch));
  }
  ~FftPlan() {
    if (plan_) cufftDestroy(plan_);
  }
  FftPlan(const FftPlan&) = delete;
  FftPlan& operator=(const FftPlan&) = delete;
  cufftHandle get() const { return plan_; }

 private:
  cufftHandle plan_ = 0;
};

}  // namespace bsim::cuda
