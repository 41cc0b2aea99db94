#include "runtime/allocator.hpp"

#include <dlfcn.h>

#include <cstddef>
#include <string>

namespace taskhost {

namespace {

using mallctl_fn = int (*)(const char*, void*, size_t*, void*, size_t);

template <class T>
bool read_ctl(mallctl_fn ctl, const char* name, T& out) {
  size_t len = sizeof(T);
  return ctl(name, &out, &len, nullptr, 0) == 0 && len == sizeof(T);
}

}  // namespace

std::string allocator_description() {
  // jemalloc's control interface, if jemalloc is in the process (linked or preloaded). Looked up,
  // not linked: the runtime library does not depend on it.
  auto ctl = reinterpret_cast<mallctl_fn>(dlsym(RTLD_DEFAULT, "mallctl"));
  const char* version = nullptr;
  if (!ctl || !read_ctl(ctl, "version", version) || !version) return "the C library's (or a sanitizer's) malloc";
  std::string s = std::string("jemalloc ") + version;
  bool background = false;
  ssize_t dirty = 0, muzzy = 0;
  if (read_ctl(ctl, "opt.background_thread", background) && read_ctl(ctl, "opt.dirty_decay_ms", dirty) &&
      read_ctl(ctl, "opt.muzzy_decay_ms", muzzy))
    s += std::string(" (background_thread:") + (background ? "true" : "false") + ", dirty_decay_ms:" + std::to_string(dirty) +
         ", muzzy_decay_ms:" + std::to_string(muzzy) + ")";
  return s;
}

}  // namespace taskhost
