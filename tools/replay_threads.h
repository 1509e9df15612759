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
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
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

  // Runs `op` on thread number `thread` (0: here) and returns when it is done.
  void Run(int thread, const std::function<void()>& op) {
    if (thread <= 0 || static_cast<std::size_t>(thread) > workers_.size()) return op();
    Worker& w = *workers_[static_cast<std::size_t>(thread) - 1];
    std::unique_lock<std::mutex> lock(w.mu);
    w.op = &op;
    w.cv.notify_all();
    w.cv.wait(lock, [&] { return w.op == nullptr; });
  }

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    const std::function<void()>* op = nullptr;  // the op to run; nullptr once done
    bool stop = false;
    std::thread thread{[this] { Loop(); }};  // last: starts after the fields above

    void Loop() {
      std::unique_lock<std::mutex> lock(mu);
      while (true) {
        cv.wait(lock, [&] { return op != nullptr || stop; });
        if (op == nullptr) return;  // stop, nothing pending
        (*op)();
        op = nullptr;
        cv.notify_all();
      }
    }
  };
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace umpool::replay

#endif  // UMPOOL_TOOLS_REPLAY_THREADS_H_
