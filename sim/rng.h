// Counter-based seeding + a small portable generator, so that example i of seed s is the same on every
// machine, thread count and backend (std:: distributions differ between standard libraries).
#pragma once
#include <cmath>
#include <cstdint>

namespace bsim {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Independent random streams of one example: geometry, speech choice, noise, late tail, babble talkers, and
// augmentations of the dry speech (a stream of their own, so that turning one on changes no other draw).
enum class Stream : uint64_t { scene = 1, speech = 2, noise = 3, tail = 4, babble = 5, augment = 6 };

class Rng {
 public:
  Rng(uint64_t seed, uint64_t example, Stream stream, uint64_t sub = 0) {
    uint64_t x = splitmix64(seed ^ splitmix64(example * 0x100000001B3ull + uint64_t(stream) * 0x9E37ull + sub));
    for (auto& w : s_) w = x = splitmix64(x);
  }
  uint64_t next() {  // xoshiro256**
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t, s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int uniform_int(int lo, int hi) {  // inclusive
    return lo + int(next() % uint64_t(hi - lo + 1));
  }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace bsim
