// tools/umpool_replay.cc (built as umpool-replay): replays an allocation trace
// (docs/trace.md) against umpool and, on a GPU machine, against PyTorch's
// CUDACachingAllocator, cudaMallocAsync and the original per-request managed
// path, one after the other in one process, and reports for each: peak live
// bytes, peak reserved bytes, their ratio, backend calls (total and after the
// trace's warm-up mark), cache-hit rate, time per operation and peak mapped
// bytes (umpool: reserved plus reserves not yet populated).
//
//   umpool-replay TRACE [--allocators umpool,pytorch_native,cudaMallocAsync,seed_per_request]
//                 [--backend host|host-vmm|managed] [--snapshot FILE] [--json FILE]
//                 [--max-ratio R] [--steady [--steady-calls N]] [--capacity-gib G] [--quiet]
//
// --max-ratio R: exit 1 if umpool's peak reserved / peak live exceeds R.
// --steady: exit 1 if umpool made backend calls (maps, growth in place) after
//           the warm-up mark (more than N with --steady-calls N).
// --snapshot FILE: umpool's Pool::SnapshotJson() at the moment of peak live
// bytes (draw it with tools/umpool-snapshot); with --snapshot-op N, after the
// allocation at op N instead (e.g. one --verbose names as a backend call).
// --cap-live F: pressure mode (umpool only): the pool's cap is F times the
// trace's peak live bytes (F < 1: the trace cannot fit); an allocation that
// fails is counted (ooms in the table and JSON) and skipped with its frees,
// and the replay exits 1 if any failed. --pressure evict sets a pressure
// callback that evicts the oldest live large blocks (KV first: a paused
// request's blocks) to the host until the request fits: evicted live blocks
// do not count against the cap (PoolOptions::capacity_bytes). The JSON adds
// the callback's evictions and the peak of reserved minus evicted bytes.
// --conf TEXT: options for umpool's pool in UMPOOL_CONF's language
// (docs/conf.md; umpool::ParsePoolOptions), applied after the flags above
// (a `backend` key is refused: --backend chooses it): e.g. --conf default.slab_space_max:1MiB
// to see what an option does to a recorded workload.
// --repeat N: the trace N times in a row in one pool (a program doing its
// whole work again; replay_trace.h, Repeat), the warm-up mark at the end of
// the first run: calls after warm-up are then what each repetition costs, and
// the peak what the layout drifts to (e.g. --repeat 4 on a recorded training
// program).
// --one-role: every allocation in the default role, as a PyTorch program's
// tensors are (a generated trace's roles ignored).
// Threads: a trace with a thread column (recorded by the pool since the
// forty-sixth session) has each op run on its recorded thread, one at a time
// in the trace's order (replay_threads.h), so thread caches hold what they
// held in the recording; --one-thread runs every op on one thread.
// --json FILE: the table's figures per allocator, and for umpool each role's
// reserved and allocated bytes at peak live ("roles_at_peak_live").
//
// Without a GPU only umpool on the host backend runs. PyTorch's allocator is
// reached through bench/torch_anchor/torch_shim.cc (UMPOOL_TORCH_SHIM), as in
// bench/pool_benchmark. Nothing is launched on the GPU: the replay measures
// the allocators, not kernels, so every stream is idle and cross-stream
// reuse waits for nothing.
#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/allocators.h"
#include "tools/lagging_backend.h"
#include "tools/replay_report.h"
#include "tools/replay_threads.h"
#include "tools/replay_trace.h"
#include "umpool/backend.h"
#include "umpool/pool.h"

namespace {

using umpool::Role;

bool g_verbose = false;  // --verbose: the call counts at the warm-up mark, then each call after it
long long g_snapshot_op = -1;  // --snapshot-op N: snapshot after op N, not at peak live
bool g_one_thread = false;  // --one-thread: every op on the replay's thread, whatever the trace says
using umpool::Stream;
using umpool::replay::Fail;
using umpool::replay::Load;
using umpool::replay::Op;
using umpool::replay::PressureFigures;
using umpool::replay::PrintTable;
using umpool::replay::Result;
using umpool::replay::Trace;
using umpool::replay::WriteJson;

// What the replay drives. umpool gets roles and record-stream; the anchors
// take the bench adapters.
class Target {
 public:
  virtual ~Target() = default;
  virtual void* Alloc(std::size_t bytes, Stream s, Role role) = 0;
  virtual void Free(void* p, std::size_t bytes, Stream s) = 0;
  virtual bool Record(void*, Stream) { return false; }
  virtual long long BackendCalls() const = 0;
  // What BackendCalls counts, by kind ("" if the allocator does not say).
  virtual std::string BackendCallKinds() const { return ""; }
  // Stream-rule counts (umpool: blocks reused across streams, behind waits).
  virtual std::string StreamReuses() const { return ""; }
  virtual long long PeakReserved() const = 0;
  // Peak bytes mapped from the backend (umpool: reserved plus untouched reserves); -1: n/a.
  virtual long long PeakMapped() const { return -1; }
  virtual double HitRate() const { return -1; }
  virtual std::string Snapshot() const { return ""; }
  // Each role's reserved and allocated bytes now, as a JSON object ("" if
  // the allocator has no roles).
  virtual std::string RoleFigures() const { return ""; }
  // Pressure mode: allocations that fail counted, not fatal (nullptr).
  virtual long long Ooms() const { return 0; }
  virtual const std::string& FirstOom() const {
    static const std::string none;
    return none;
  }
};

// --keep-free-pages: PoolOptions::give_back_free_pages off for umpool's pools;
// --give-back-slack F: PoolOptions::give_back_slack (negative: the default);
// --wait-pending: PoolOptions::reuse_pending_blocks off;
// --event-lag N: host backend events complete N trace ops after they are
// recorded (tools/lagging_backend.h), g_op being the op the replay is at;
// --backend host-vmm: the host backend with the vmm backend's rules
// (CreateHostBackend's populate_on_request).
bool g_host_vmm = false;
bool g_give_back = true;
bool g_reuse_pending = true;
long long g_event_lag = 0;
std::uint64_t g_op = 0;
double g_give_back_slack = -1;
std::string g_conf;  // --conf

class UmpoolTarget final : public Target {
 public:
  // `host_limit`: the host backend's own limit (default: the cap).
  UmpoolTarget(umpool::BackendKind kind, std::size_t capacity, std::size_t host_limit = 0) {
    umpool::PoolOptions o;
    o.backend = kind;
    o.capacity_bytes = capacity;
    o.stats_publish_bytes = 0;  // exact peaks
    o.give_back_free_pages = g_give_back;
    o.reuse_pending_blocks = g_reuse_pending;
    if (g_give_back_slack >= 0) o.give_back_slack = g_give_back_slack;
    if (!g_conf.empty()) {
      absl::StatusOr<umpool::PoolOptions> conf = umpool::ParsePoolOptions(g_conf, o);
      if (!conf.ok()) Fail("--conf: " + std::string(conf.status().message()));
      if (conf->backend != kind) Fail("--conf: the backend is --backend's to choose, not --conf's");
      o = *std::move(conf);
    }
    if (kind == umpool::BackendKind::kHost) {
      // The host backend's own limit (half of RAM by default) must not stop a
      // GPU-sized trace: it maps with MAP_NORESERVE and the replay never
      // touches the memory.
      std::unique_ptr<umpool::Backend> backend =
          umpool::CreateHostBackend(host_limit != 0 ? host_limit : capacity, g_host_vmm);
      if (g_event_lag > 0) {
        backend = std::make_unique<umpool_tools::LaggingBackend>(
            std::move(backend), static_cast<std::uint64_t>(g_event_lag), &g_op);
      }
      auto pool = umpool::Pool::Create(o, std::move(backend));
      if (!pool.ok()) Fail("umpool: " + pool.status().ToString());
      pool_ = *std::move(pool);
      return;
    }
    auto pool = umpool::Pool::Create(o);
    if (!pool.ok()) Fail("umpool: " + pool.status().ToString());
    pool_ = *std::move(pool);
  }
  void* Alloc(std::size_t bytes, Stream s, Role role) override {
    auto p = pool_->Allocate(bytes, s, role);
    if (!p.ok()) {
      if (!pressure_mode_ || !absl::IsResourceExhausted(p.status())) Fail("umpool: " + p.status().ToString());
      if (ooms_++ == 0) first_oom_ = p.status().ToString();
      return nullptr;
    }
    if (pressure_mode_) {
      if (bytes > pool_->options().roles[static_cast<int>(role)].slab_max_bytes) {
        age_[*p] = order_.insert(order_.end(), LiveBlock{*p, bytes, s, role, false});
      }
      const umpool::Stats st = pool_->GetStats();
      pressure_.peak_on_gpu_bytes = std::max<long long>(
          pressure_.peak_on_gpu_bytes, st.reserved_bytes.current - st.host_bytes.current);
    }
    return *p;
  }
  void Free(void* p, std::size_t, Stream s) override {
    if (absl::Status st = pool_->Deallocate(p, s); !st.ok()) Fail("umpool: " + st.ToString());
    if (auto it = age_.find(p); it != age_.end()) {
      order_.erase(it->second);
      age_.erase(it);
    }
  }
  // Pressure mode (see --cap-live): failures counted; with `evict`, a
  // pressure callback evicting the oldest live large blocks, KV first.
  void EnablePressure(bool evict, std::size_t cap) {
    pressure_mode_ = true;
    pressure_.cap_bytes = static_cast<long long>(cap);
    if (!evict) return;
    pool_->SetPressureCallback([this](std::size_t bytes, Role) {
      ++pressure_.callbacks;
      std::size_t freed = 0;
      for (int pass = 0; pass < 2 && freed < bytes; ++pass) {
        for (LiveBlock& b : order_) {
          if (freed >= bytes) break;
          if (b.evicted || (pass == 0 && b.role != Role::kKv)) continue;
          if (!pool_->Evict(b.p, b.stream).ok()) continue;
          b.evicted = true;
          freed += b.bytes;
          ++pressure_.evictions;
          pressure_.evicted_bytes += static_cast<long long>(b.bytes);
        }
      }
      return freed > 0;
    });
  }
  const PressureFigures& pressure() const { return pressure_; }
  long long Ooms() const override { return ooms_; }
  const std::string& FirstOom() const override { return first_oom_; }
  bool Record(void* p, Stream s) override {
    if (absl::Status st = pool_->RecordStream(p, s); !st.ok()) Fail("umpool: " + st.ToString());
    return true;
  }
  long long BackendCalls() const override {
    long long calls = 0;
    for (const auto& [kind, n] : CallKinds()) calls += static_cast<long long>(n);
    return calls;
  }
  std::string BackendCallKinds() const override {
    std::string out;
    for (const auto& [kind, n] : CallKinds()) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", kind, " ", n);
    }
    return out;
  }
  std::string StreamReuses() const override {
    const umpool::Stats s = pool_->GetStats();
    return absl::StrCat("cross_stream_reuses ", s.cross_stream_reuses, ", ordered_reuses ",
                        s.ordered_reuses, ", events_recorded ", s.events_recorded,
                        ", segments_moved ", s.segments_moved);
  }
  long long PeakReserved() const override { return pool_->GetStats().reserved_bytes.peak; }
  long long PeakMapped() const override { return pool_->GetStats().mapped_bytes.peak; }
  double HitRate() const override {
    const umpool::Stats s = pool_->GetStats();
    return s.allocations == 0 ? 0 : static_cast<double>(s.cache_hits) / static_cast<double>(s.allocations);
  }
  std::string Snapshot() const override { return pool_->SnapshotJson(); }
  std::string RoleFigures() const override {
    std::string out = "{";
    for (int r = 0; r < umpool::kNumRoles; ++r) {
      const umpool::RoleResidency rr = pool_->GetResidency(static_cast<umpool::Role>(r));
      out += (r == 0 ? "\"" : ",\"") + std::string(umpool::RoleName(static_cast<umpool::Role>(r))) +
             "\":{\"reserved_bytes\":" + std::to_string(rr.reserved_bytes) +
             ",\"allocated_bytes\":" + std::to_string(rr.allocated_bytes) + "}";
    }
    return out + "}";
  }

 private:
  struct LiveBlock {
    void* p;
    std::size_t bytes;
    Stream stream;
    Role role;
    bool evicted;
  };
  // What BackendCalls counts: maps, in-place growth (a prefetch each), and
  // pages given back and refilled.
  std::array<std::pair<const char*, std::uint64_t>, 4> CallKinds() const {
    const umpool::Stats s = pool_->GetStats();
    return {{{"maps", s.backend_allocations},
             {"grown in place", s.grown_in_place},
             {"page drops", s.page_drops},
             {"bare refills", s.bare_refills}}};
  }
  std::unique_ptr<umpool::Pool> pool_;
  bool pressure_mode_ = false;
  long long ooms_ = 0;
  std::string first_oom_;
  PressureFigures pressure_;
  std::list<LiveBlock> order_;  // live large blocks, oldest first (pressure mode)
  absl::flat_hash_map<void*, std::list<LiveBlock>::iterator> age_;
};

class AnchorTarget final : public Target {
 public:
  explicit AnchorTarget(std::unique_ptr<umpool::bench::BenchAllocator> a) : a_(std::move(a)) {}
  ~AnchorTarget() override { a_->Release(); }
  void* Alloc(std::size_t bytes, Stream s, Role) override { return a_->Alloc(bytes, s); }
  void Free(void* p, std::size_t bytes, Stream s) override { a_->Free(p, bytes, s); }
  long long BackendCalls() const override { return a_->BackendCalls(); }
  long long PeakReserved() const override { return a_->PeakReservedBytes(); }

 private:
  std::unique_ptr<umpool::bench::BenchAllocator> a_;
};

void MeanP99(std::vector<float>& v, double* mean, double* p99) {
  if (v.empty()) return;
  double sum = 0;
  for (float x : v) sum += x;
  *mean = sum / static_cast<double>(v.size());
  const std::size_t k = std::min(v.size() - 1, v.size() * 99 / 100);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  *p99 = v[k];
}

Result Replay(const Trace& t, const std::string& name, Target& target, bool gpu, bool quiet,
              const std::string& snapshot_path) {
  Result r;
  r.name = name;
  std::vector<Stream> streams;
  for (int i = 0; i < t.streams; ++i) streams.push_back(umpool::bench::BenchStream(i, gpu));
  struct Live {
    void* p;
    std::size_t bytes;
  };
  absl::flat_hash_map<std::uint64_t, Live> live;
  live.reserve(1024);
  std::vector<float> alloc_ns, free_ns;
  alloc_ns.reserve(t.allocations);
  free_ns.reserve(t.allocations);
  long long calls_at_warmup = -1, last_calls = -1;
  std::int64_t live_bytes = 0;
  using Clock = std::chrono::steady_clock;
  umpool::replay::OnThreads threads(g_one_thread ? 1 : t.threads);
  // Runs `call` on the op's thread; its nanoseconds there.
  auto timed = [&](const Op& op, auto&& call) {
    Clock::time_point t0, t1;
    threads.Run(op.thread, [&] {
      t0 = Clock::now();
      call();
      t1 = Clock::now();
    });
    return std::chrono::duration<float, std::nano>(t1 - t0).count();
  };
  const auto start = Clock::now();
  auto last_progress = start;
  for (std::size_t i = 0; i < t.ops.size(); ++i) {
    if (t.warmup_end != 0 && i == t.warmup_end) {
      last_calls = calls_at_warmup = target.BackendCalls();
      if (g_verbose) {
        std::fprintf(stderr, "  at the warm-up mark (op %zu): peak reserved %.1f MiB; %s\n", i,
                     target.PeakReserved() / 1048576.0, target.BackendCallKinds().c_str());
      }
    }
    g_op = i;
    const Op& op = t.ops[i];
    const Stream s = streams[static_cast<std::size_t>(op.stream)];
    if (op.kind == 'a') {
      void* p = nullptr;
      const float ns = timed(op, [&] { p = target.Alloc(op.bytes, s, op.role); });
      if (p == nullptr) continue;  // pressure mode: counted by the target; its frees skipped
      alloc_ns.push_back(ns);
      live[op.id] = {p, op.bytes};
      if (g_verbose && calls_at_warmup >= 0) {
        const long long calls = target.BackendCalls();
        if (calls != last_calls) {
          std::fprintf(stderr, "  backend call after warm-up: op %zu allocates %zu bytes (role %d, stream %d), live %.1f MiB, "
                       "peak reserved %.1f MiB; %s\n",
                       i, op.bytes, static_cast<int>(op.role), op.stream, live_bytes / 1048576.0,
                       target.PeakReserved() / 1048576.0, target.BackendCallKinds().c_str());
          last_calls = calls;
        }
      }
      live_bytes += static_cast<std::int64_t>(op.bytes);
      r.peak_live = std::max(r.peak_live, live_bytes);
      if (i == t.peak_live_at) r.roles_at_peak_live = target.RoleFigures();
      if (i == (g_snapshot_op >= 0 ? static_cast<std::size_t>(g_snapshot_op) : t.peak_live_at) &&
          !snapshot_path.empty()) {
        const std::string snap = target.Snapshot();
        if (!snap.empty()) {
          std::FILE* f = std::fopen(snapshot_path.c_str(), "w");
          if (f == nullptr) Fail("cannot write " + snapshot_path);
          std::fputs(snap.c_str(), f);
          std::fclose(f);
        }
      }
    } else if (op.kind == 'f') {
      auto it = live.find(op.id);
      if (it == live.end()) continue;  // its allocation failed (pressure mode)
      free_ns.push_back(timed(op, [&] { target.Free(it->second.p, it->second.bytes, s); }));
      live_bytes -= static_cast<std::int64_t>(it->second.bytes);
      live.erase(it);
    } else if (op.kind == 'r') {
      auto it = live.find(op.id);
      bool recorded = true;
      if (it != live.end()) threads.Run(op.thread, [&] { recorded = target.Record(it->second.p, s); });
      if (!recorded) ++r.records_skipped;
    }
    if (!quiet && (i & 4095) == 0) {
      const auto now = Clock::now();
      if (now - last_progress > std::chrono::seconds(2)) {
        last_progress = now;
        std::fprintf(stderr, "  %s: %5.1f%% (%zu of %zu ops, %.0f s)\n", name.c_str(),
                     100.0 * static_cast<double>(i) / static_cast<double>(t.ops.size()), i,
                     t.ops.size(), std::chrono::duration<double>(now - start).count());
      }
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (g_verbose && !target.StreamReuses().empty()) {
    std::fprintf(stderr, "  at the end: %s\n", target.StreamReuses().c_str());
  }
  r.peak_reserved = target.PeakReserved();
  r.peak_mapped = target.PeakMapped();
  r.backend_calls = target.BackendCalls();
  if (calls_at_warmup >= 0 && r.backend_calls >= 0) r.backend_calls_after_warmup = r.backend_calls - calls_at_warmup;
  r.hit_rate = target.HitRate();
  r.ooms = target.Ooms();
  r.first_oom = target.FirstOom();
  MeanP99(alloc_ns, &r.alloc_mean_ns, &r.alloc_p99_ns);
  MeanP99(free_ns, &r.free_mean_ns, &r.free_p99_ns);
  // Free what the trace left live, so the next allocator starts clean.
  for (auto& [id, l] : live) target.Free(l.p, l.bytes, streams[0]);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string trace_path, allocators, backend, snapshot, json;
  double max_ratio = 0, capacity_gib = 0, cap_live = 0;
  std::string pressure = "none";
  bool steady = false, quiet = false;
  long long steady_calls = 0;
  int repeat = 1;
  bool one_role = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--allocators") allocators = value();
    else if (a == "--backend") backend = value();
    else if (a == "--snapshot") snapshot = value();
    else if (a == "--json") json = value();
    else if (a == "--capacity-gib") {
      if (!absl::SimpleAtod(value(), &capacity_gib) || capacity_gib <= 0) Fail("--capacity-gib needs a positive number");
    } else if (a == "--cap-live") {
      if (!absl::SimpleAtod(value(), &cap_live) || cap_live <= 0) Fail("--cap-live needs a positive fraction of peak live bytes");
    } else if (a == "--pressure") {
      pressure = value();
      if (pressure != "evict" && pressure != "none") Fail("--pressure must be evict or none");
    } else if (a == "--max-ratio") {
      if (!absl::SimpleAtod(value(), &max_ratio) || max_ratio <= 0) Fail("--max-ratio needs a positive number");
    } else if (a == "--steady") steady = true;
    else if (a == "--steady-calls") {
      if (!absl::SimpleAtoi(value(), &steady_calls) || steady_calls < 0) Fail("--steady-calls needs a count >= 0");
    }
    else if (a == "--quiet") quiet = true;
    else if (a == "--keep-free-pages") g_give_back = false;
    else if (a == "--wait-pending") g_reuse_pending = false;
    else if (a == "--event-lag") {
      if (!absl::SimpleAtoi(value(), &g_event_lag) || g_event_lag < 0) Fail("--event-lag needs a count of ops >= 0");
    }
    else if (a == "--give-back-slack") {
      if (!absl::SimpleAtod(value(), &g_give_back_slack) || !(g_give_back_slack >= 0 && g_give_back_slack <= 1)) {
        Fail("--give-back-slack needs a number from 0 to 1");
      }
    }
    else if (a == "--conf") g_conf = value();
    else if (a == "--repeat") {
      if (!absl::SimpleAtoi(value(), &repeat) || repeat < 1 || repeat > 1000) Fail("--repeat needs a count from 1 to 1000");
    }
    else if (a == "--one-role") one_role = true;
    else if (a == "--verbose") g_verbose = true;
    else if (a == "--one-thread") g_one_thread = true;
    else if (a == "--snapshot-op") {
      if (!absl::SimpleAtoi(value(), &g_snapshot_op) || g_snapshot_op < 0) Fail("--snapshot-op needs an op index >= 0");
    }
    else if (a == "-h" || a == "--help") {
      std::printf("usage: umpool-replay TRACE [--allocators LIST] [--backend host|host-vmm|managed] "
                  "[--snapshot FILE [--snapshot-op N]] [--json FILE] [--max-ratio R] [--steady [--steady-calls N]] "
                  "[--capacity-gib G] [--cap-live F [--pressure evict|none]] [--keep-free-pages] [--give-back-slack F] [--wait-pending] [--event-lag N] "
                  "[--conf TEXT] [--repeat N] [--one-role] [--one-thread] [--verbose] [--quiet]\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && trace_path.empty()) trace_path = a;
    else Fail("unknown argument '" + a + "' (try --help)");
  }
  if (trace_path.empty()) Fail("no trace given (try --help)");
  const bool gpu = umpool::CudaAvailable();
  if (backend.empty()) backend = gpu ? "managed" : "host";
  if (backend == "host-vmm") {
    g_host_vmm = true;
    backend = "host";
  }
  if (backend != "host" && backend != "managed") Fail("--backend must be host, host-vmm or managed");
  if (g_event_lag > 0 && backend != "host") Fail("--event-lag applies to the host backend only");
  if (backend == "managed" && !gpu) Fail("--backend managed needs a GPU");
  if (allocators.empty()) {
    allocators = "umpool";
    if (gpu) {
      if (std::getenv("UMPOOL_TORCH_SHIM") != nullptr) allocators += ",pytorch_native";
      allocators += ",cudaMallocAsync,seed_per_request";
    }
  }
  if (cap_live > 0 && allocators != "umpool") Fail("--cap-live replays umpool only (--allocators umpool)");
  if (cap_live > 0 && capacity_gib > 0) Fail("--cap-live and --capacity-gib both set the cap: give one");
  const Trace t = Repeat(one_role ? OneRole(Load(trace_path)) : Load(trace_path), repeat);
  std::fprintf(stderr, "umpool-replay: %s: %zu ops, %zu allocations, %d streams, peak live %.1f MiB%s\n",
               trace_path.c_str(), t.ops.size(), t.allocations, t.streams, t.peak_live / 1048576.0,
               t.warmup_end == 0 ? ", no warm-up mark" : repeat > 1 ? absl::StrCat(", ", repeat, " runs").c_str() : "");
  std::vector<Result> results;
  UmpoolTarget* umpool_target = nullptr;
  for (const std::string& name : std::vector<std::string>(absl::StrSplit(allocators, ','))) {
    std::unique_ptr<Target> target;
    std::string label = name;
    if (name == "umpool") {
      // Host pools map without touching (MAP_NORESERVE), so a trace larger
      // than this machine's memory still replays; managed pools keep the
      // default cap (the GPU's free memory).
      const std::size_t cap = capacity_gib > 0 ? static_cast<std::size_t>(capacity_gib * (1ull << 30))
                              : backend == "host" ? std::size_t{1} << 40
                                                  : 0;
      const auto kind = backend == "host" ? umpool::BackendKind::kHost : umpool::BackendKind::kManaged;
      if (cap_live > 0) {
        // The cap on GPU-held bytes; a host backend may map beyond it (evicted blocks).
        const auto live_cap = static_cast<std::size_t>(cap_live * static_cast<double>(t.peak_live));
        auto u = kind == umpool::BackendKind::kHost
                     ? std::make_unique<UmpoolTarget>(kind, live_cap, std::size_t{1} << 40)
                     : std::make_unique<UmpoolTarget>(kind, live_cap);
        u->EnablePressure(pressure == "evict", live_cap);
        umpool_target = u.get();
        target = std::move(u);
        label = "umpool (" + backend + ", cap " + std::to_string(cap_live) + " x peak live, pressure " +
                pressure + ")";
      } else {
        target = std::make_unique<UmpoolTarget>(kind, cap);
        label = "umpool (" + backend + (g_host_vmm ? ", vmm rules" : "") +
                (g_give_back ? "" : ", free pages kept") + ")";
      }
    } else {
      for (const auto& f : umpool::bench::AvailableAllocators()) {
        if (f.name == name) target = std::make_unique<AnchorTarget>(f.make());
      }
      if (target == nullptr) Fail("allocator '" + name + "' is not available here");
    }
    if (!quiet) std::fprintf(stderr, "umpool-replay: replaying through %s\n", label.c_str());
    results.push_back(Replay(t, label, *target, gpu, quiet, name == "umpool" ? snapshot : ""));
    if (umpool_target != nullptr && name == "umpool" && cap_live > 0) {
      results.back().pressure_mode = true;
      results.back().pressure = umpool_target->pressure();
    }
  }
  PrintTable(results);
  if (!json.empty()) WriteJson(json, trace_path, t, results);
  int rc = 0;
  const Result& u = results.front();
  if (allocators.rfind("umpool", 0) == 0) {
    if (max_ratio > 0 && u.ratio() > max_ratio) {
      std::fprintf(stderr, "FAIL: umpool peak reserved / peak live = %.4f > %.4f\n", u.ratio(), max_ratio);
      rc = 1;
    }
    if (u.pressure_mode) {
      const PressureFigures& p = u.pressure;
      std::printf("\npressure: cap %.1f MiB (%.2f x peak live), %lld allocations failed, callback asked %lld "
                  "times, evicted %lld blocks (%.1f MiB), peak reserved less evicted %.1f MiB\n",
                  p.cap_bytes / 1048576.0, cap_live, u.ooms, p.callbacks, p.evictions,
                  p.evicted_bytes / 1048576.0, p.peak_on_gpu_bytes / 1048576.0);
      if (u.ooms > 0) {
        std::fprintf(stderr, "FAIL: %lld allocations failed; the first: %s\n", u.ooms, u.first_oom.c_str());
        rc = 1;
      }
    }
    if (steady && u.backend_calls_after_warmup > steady_calls) {
      std::fprintf(stderr, "FAIL: umpool made %lld backend calls after warm-up (expected <= %lld)\n",
                   u.backend_calls_after_warmup, steady_calls);
      rc = 1;
    }
  }
  return rc;
}
