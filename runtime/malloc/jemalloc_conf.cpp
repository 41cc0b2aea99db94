// jemalloc's settings for the executables that link it (the taskhost binary and the benchmarks;
// CMake option TASKHOST_JEMALLOC). jemalloc reads this symbol at its start; the environment
// variable MALLOC_CONF still overrides it.
//
// Why jemalloc: a run's record, its row and its messages are allocated on one thread and freed on
// another (trigger thread, writer, actors, executor). glibc's malloc took about 18% of the CPU of
// the embedded benchmark doing that; with jemalloc the same benchmark used 0.71× the CPU
// (README, Performance).
//
// - background_thread:true, max_background_threads:1: one thread gives unused pages back to the
//   system, so an idle process shrinks without waiting for its next allocation;
// - dirty_decay_ms:100 (default 10 s), muzzy_decay_ms:0: pages freed during a burst go back to the
//   system within a tenth of a second. Measured (embedded benchmark, 100,000 runs at once, paired
//   runs): peak 150-157 MB at 100 ms against 160-166 MB at 1 s, for the same CPU; at 0 ms the peak
//   is 142-149 MB but the CPU 1.19x.
// Measured on the taskhost binary at rest: 25 MB resident with jemalloc's defaults, 18 MB with
// these (16 MB on glibc's malloc).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "background_thread:true,max_background_threads:1,dirty_decay_ms:100,muzzy_decay_ms:0";
}
