#pragma once
// Which malloc this process runs on, as `taskhost --version` and the start-up log say it.
//
// The taskhost binary and the benchmarks link jemalloc (runtime/malloc/jemalloc_conf.cpp holds its
// settings; CMake option TASKHOST_JEMALLOC). A program that embeds the runtime keeps whatever
// allocator it links: this tells which one that is, found at run time.

#include <string>

namespace taskhost {

/// "jemalloc 5.3.0-0-g… (background_thread:true, dirty_decay_ms:100, muzzy_decay_ms:0)" when
/// jemalloc serves malloc, else "the C library's (or a sanitizer's) malloc".
std::string allocator_description();

}  // namespace taskhost
