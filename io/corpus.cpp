// Directory scanning with folder-name filters (how the embedded corpus keeps a language held out).
#include "io/corpus.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "io/error.h"

namespace fs = std::filesystem;

namespace bsim {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

std::vector<std::string> scan_corpus(const std::vector<std::string>& roots, const CorpusFilter& filter) {
  std::vector<std::string> files;
  for (const auto& root : roots) {
    std::error_code ec;
    fs::path root_path = fs::path(root).lexically_normal();
    if (!root_path.has_filename()) root_path = root_path.parent_path();  // "a/b/" -> "a/b"
    if (!fs::is_directory(root_path, ec))
      throw InputError("corpus folder '" + root + "' does not exist or is not a folder");
    for (auto it = fs::recursive_directory_iterator(root_path, fs::directory_options::follow_directory_symlink, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_regular_file(ec)) continue;
      const fs::path& p = it->path();
      std::string ext = p.extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (!contains(filter.extensions, ext)) continue;
      bool included = filter.include_dirs.empty(), excluded = false;
      // Folder names from the root's own name down, so that a root ".../nl" counts as folder "nl".
      for (const auto& part : p.parent_path().lexically_relative(root_path.parent_path())) {
        if (contains(filter.include_dirs, part.string())) included = true;
        if (contains(filter.exclude_dirs, part.string())) excluded = true;
      }
      if (included && !excluded) files.push_back(p.string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace bsim
