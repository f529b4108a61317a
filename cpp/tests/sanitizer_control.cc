// Deliberate bugs, one per check, that `make sanitize` expects the sanitizers to report: the
// proof that a clean run means something (the build is instrumented, the runtime is loaded,
// the options and suppressions do not hide real reports).
//
//   sanitizer_control race|use-after-free|signed-overflow
#include <climits>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace {

// Two threads increment a counter; only one of them takes the mutex.
int Race() {
  absl::Mutex mu;
  int counter = 0;
  std::thread other([&] {
    absl::MutexLock l(&mu);
    ++counter;
  });
  ++counter;
  other.join();
  return counter == 2 ? 0 : 1;
}

int UseAfterFree() {
  int* p = new int(7);
  delete p;
  return *p;
}

int SignedOverflow(int by) {
  int big = INT_MAX;
  return big + by;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "race") == 0) return Race();
  if (argc == 2 && std::strcmp(argv[1], "use-after-free") == 0) return UseAfterFree();
  if (argc == 2 && std::strcmp(argv[1], "signed-overflow") == 0) return SignedOverflow(argc - 1) == 0;
  std::fprintf(stderr, "usage: sanitizer_control race|use-after-free|signed-overflow\n");
  return 2;
}
