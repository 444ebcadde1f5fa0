// Typed errors for bsim. Library code throws these with context; only main() turns them into one line
// on stderr and an exit code, so that every bad input ends the same way.
#pragma once
#include <stdexcept>
#include <string>

namespace bsim {

// Bad user input: a file, a config key, a flag or a parameter value. Exit code 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An environment or I/O failure that is not the user's input (disk full, library failure). Exit code 3.
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown when the user interrupts a long run (SIGINT/SIGTERM); partial work is left resumable. Exit 130.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace bsim

#define BSIM_EXPECTS(cond, msg)                              \
  do {                                                       \
    if (!(cond)) throw ::bsim::InputError(std::string(msg)); \
  } while (0)
