// tools/replay_threads.h: runs each op of a replay on the thread that made it.
//
// A trace with a thread column (docs/trace.md) names the thread of every op:
// PyTorch's autograd, for one, frees on its own thread the blocks a forward
// pass allocated on the main thread, so they land in that thread's cache. A
// replay on one thread would not see that. OnThreads keeps one worker per
// recorded thread number above 0 (0 is the caller) and runs each op there,
// one op at a time and in the trace's order: the caller hands the op over and
// waits for it, so the pool sees the recording's order and its threads.
//
// Thread safety: Run is called by one thread (the replay's).
#ifndef UMPOOL_TOOLS_REPLAY_THREADS_H_
#define UMPOOL_TOOLS_REPLAY_THREADS_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace umpool::replay {

class OnThreads {
 public:
  // Workers for thread numbers 1 .. threads - 1 (none for threads <= 1).
  explicit OnThreads(int threads) {
    for (int i = 1; i < threads; ++i) workers_.push_back(std::make_unique<Worker>());
  }
  ~OnThreads() {
    for (auto& w : workers_) {
      {
        std::lock_guard<std::mutex> lock(w->mu);
        w->stop = true;
      }
      w->cv.notify_all();
      w->thread.join();
    }
  }
  OnThreads(const OnThreads&) = delete;
  OnThreads& operator=(const OnThreads&) = delete;

  // Runs `op` (a callable) on thread number `thread` (0: here, a plain call)
  // and returns when it is done.
  template <class F>
  void Run(int thread, F&& op) {
    if (thread <= 0 || static_cast<std::size_t>(thread) > workers_.size()) return op();
    Worker& w = *workers_[static_cast<std::size_t>(thread) - 1];
    std::unique_lock<std::mutex> lock(w.mu);
    w.ctx = &op;
    w.call = [](void* ctx) { (*static_cast<std::remove_reference_t<F>*>(ctx))(); };
    w.cv.notify_all();
    w.cv.wait(lock, [&] { return w.call == nullptr; });
  }

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    void* ctx = nullptr;               // the op handed over, and how to call it;
    void (*call)(void*) = nullptr;     // call is nullptr once it is done
    bool stop = false;
    std::thread thread{[this] { Loop(); }};  // last: starts after the fields above

    void Loop() {
      std::unique_lock<std::mutex> lock(mu);
      while (true) {
        cv.wait(lock, [&] { return call != nullptr || stop; });
        if (call == nullptr) return;  // stop, nothing pending
        call(ctx);
        call = nullptr;
        cv.notify_all();
      }
    }
  };
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace umpool::replay

#endif  // UMPOOL_TOOLS_REPLAY_THREADS_H_
