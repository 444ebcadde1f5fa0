// A corpus is the sorted list of audio files under some folders, filtered by folder names and extension.
#pragma once
#include <string>
#include <vector>

namespace bsim {

struct CorpusFilter {
  std::vector<std::string> include_dirs;  // empty: any
  std::vector<std::string> exclude_dirs;
  std::vector<std::string> extensions;    // lower case, with the dot
};

// Scans every root recursively; the result is sorted so that a seed gives the same files on any machine.
// Throws InputError when a root does not exist.
std::vector<std::string> scan_corpus(const std::vector<std::string>& roots, const CorpusFilter& filter);

}  // namespace bsim
