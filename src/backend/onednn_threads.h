#pragma once
// oneDNN (Debian's build, on libgomp) runs a primitive on an OpenMP team started from the calling
// thread, by default as many threads as cores. ddp-trainer gives a rank its cores through ranks
// and its own threads (Note [threads per rank]), so each thread that calls oneDNN first limits the
// OpenMP teams it starts to itself, once.

// libgomp's entry point, declared here rather than through <omp.h>, which clang's builds (the
// fuzzers) may not have.
extern "C" void omp_set_num_threads(int threads);

namespace ddp {

inline void onednn_on_this_thread_only() {
  thread_local const bool limited = (omp_set_num_threads(1), true);
  (void)limited;
}

}  // namespace ddp
