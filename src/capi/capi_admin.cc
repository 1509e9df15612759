// The C ABI: configuration, hooks PyTorch calls, statistics, pictures, errors.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/capi/conf.h"
#include "src/capi/devices.h"
#include "src/capi/graph_pools.h"
#include "src/capi/last_error.h"
#include "umpool/umpool.h"
#include "umpool/version.h"

namespace umpool::capi {
namespace {

// Copies `text` into buf (NUL-terminated, truncated to len); returns the
// length needed. The contract of every text-returning function.
int CopyOut(const std::string& text, char* buf, std::size_t len) {
  if (buf != nullptr && len > 0) {
    const std::size_t n = std::min(len - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(text.size() + 1);
}

// The device's pool and its private pools, summed.
Stats DeviceStats(int device) {
  Stats s;
  if (Pool* p = ExistingPool(device)) s = p->GetStats();
  for (auto& [id, p] : GraphPoolsOf(device)) {
    Stats g = p->GetStats();
    g.capacity_bytes = 0;  // private pools share the device's cap in spirit; do not double it
    s.Add(g);
  }
  return s;
}

void ToC(const Stats& s, umpool_stats* out) {
#define UMPOOL_TO_C_VALUE_(name, key, doc)   \
  out->name##_current = s.name.current;      \
  out->name##_peak = s.name.peak;
#define UMPOOL_TO_C_COUNT_(name, key, doc) out->name = s.name;
  UMPOOL_STAT_VALUES(UMPOOL_TO_C_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_TO_C_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_TO_C_COUNT_)
#undef UMPOOL_TO_C_VALUE_
#undef UMPOOL_TO_C_COUNT_
}

std::string StatsFields() {
  std::string out;
  auto key = [](const char* k) { return std::string(*k == '\0' ? "-" : k); };
#define UMPOOL_FIELD_VALUE_(name, k, doc)                                            \
  absl::StrAppend(&out, #name "_current i64 ", *k ? std::string(k) + ".current" : "-", "\n", \
                  #name "_peak i64 ", *k ? std::string(k) + ".peak" : "-", "\n");
#define UMPOOL_FIELD_COUNT_(name, k, doc) absl::StrAppend(&out, #name " u64 ", key(k), "\n");
#define UMPOOL_FIELD_GAUGE_(name, k, doc) absl::StrAppend(&out, #name " i64 ", key(k), "\n");
  UMPOOL_STAT_VALUES(UMPOOL_FIELD_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_FIELD_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_FIELD_GAUGE_)
#undef UMPOOL_FIELD_VALUE_
#undef UMPOOL_FIELD_COUNT_
#undef UMPOOL_FIELD_GAUGE_
  return out;
}

void VisitSpans(Pool& pool, PoolId id, umpool_span_visitor visit, void* ctx) {
  std::vector<umpool_block_run> runs;
  for (const SpanInfo& s : pool.Spans()) {
    runs.clear();
    for (const SpanBlocks& b : s.blocks) {
      runs.push_back(umpool_block_run{b.offset, b.bytes, b.count, b.state, b.requested});
    }
    const umpool_span_info info{s.base,         s.bytes,
                                s.slab ? 1 : 0, s.slab_space ? 1 : 0,
                                static_cast<int>(s.role), s.block_bytes,
                                id.hi,          id.lo,
                                runs.data(),    runs.size()};
    visit(ctx, &info);
  }
}

}  // namespace
}  // namespace umpool::capi

using namespace umpool::capi;  // NOLINT: the exports below are thin

extern "C" {

void umpool_init(int device_count) {
  (void)Guard("umpool_init", [&] {
    if (device_count < 0 || device_count > kMaxDevices) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("umpool_init: bad device count ", device_count)));
    }
    absl::Status st = EnsureConfigured();
    return Done(st);
  });
}

void umpool_empty_cache(void) {
  (void)Guard("umpool_empty_cache", [&] {
    absl::Status status;
    for (int d = 0; d < kMaxDevices; ++d) {
      if (umpool::Pool* p = ExistingPool(d)) status.Update(p->Trim());
      // A private pool still in use keeps its cached blocks, like PyTorch's:
      // its graphs replay into memory the pool holds as free between replays.
      for (auto& [id, p] : GraphPoolsOf(d)) {
        if (UseCount(d, id) == 0) status.Update(p->Trim());
      }
    }
    return Done(status);
  });
}

void umpool_set_memory_fraction(double fraction, int device) {
  (void)Guard("umpool_set_memory_fraction", [&] {
    absl::Status st = SetMemoryFraction(fraction, device);
    return Done(st);
  });
}

double umpool_get_memory_fraction(int device) { return MemoryFraction(device); }

int umpool_configure(const char* conf) {
  return Guard("umpool_configure", [&] {
    if (conf == nullptr) return Fail(absl::InvalidArgumentError("umpool_configure: null text"));
    absl::Status st = Configure(conf);
    // A bad configuration is the caller's to report: recorded, not logged.
    return st.ok() ? UMPOOL_OK : (absl::IsFailedPrecondition(st) ? Fail(st) : Record(st));
  });
}

int umpool_conf_doc(char* buf, size_t len) {
  return GuardValue<int>("umpool_conf_doc", -1, [&] { return CopyOut(ConfDoc(), buf, len); });
}

int umpool_get_stats(int device, umpool_stats* out) {
  return Guard("umpool_get_stats", [&] {
    if (out == nullptr) return Fail(absl::InvalidArgumentError("umpool_get_stats: null output"));
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    std::memset(out, 0, sizeof(*out));
    ToC(DeviceStats(device), out);
    return static_cast<int>(UMPOOL_OK);
  });
}

const char* umpool_stats_fields(void) {
  // Built once; NULL (with the last error) if even that fails.
  static const std::string* fields = GuardValue<const std::string*>(
      "umpool_stats_fields", nullptr, [] { return new std::string(StatsFields()); });
  return fields != nullptr ? fields->c_str() : nullptr;
}

int umpool_reset_peak_stats(int device) {
  return Guard("umpool_reset_peak_stats", [&] {
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    for (umpool::Pool* p : PoolsOf(device)) p->ResetPeaks();
    return static_cast<int>(UMPOOL_OK);
  });
}

int umpool_stats_text(int device, char* buf, size_t len) {
  return GuardValue<int>("umpool_stats_text", -1, [&] {
    if (!ValidDevice(device)) return -1;
    umpool::Pool* p = ExistingPool(device);
    return CopyOut(p == nullptr ? absl::StrCat("umpool: no pool on device ", device, " yet\n")
                                : absl::StrCat(p->Describe(), "\n", DeviceStats(device).ToString()),
                   buf, len);
  });
}

int umpool_snapshot_json(int device, char* buf, size_t len) {
  return GuardValue<int>("umpool_snapshot_json", -1, [&] {
    if (!ValidDevice(device)) return -1;
    umpool::Pool* p = ExistingPool(device);
    return CopyOut(p == nullptr ? absl::StrCat("{\"umpool_snapshot\":1,\"device\":", device,
                                               ",\"spans\":[]}\n")
                                : p->SnapshotJson(),
                   buf, len);
  });
}

int umpool_visit_spans(int device, umpool_span_visitor visit, void* ctx) {
  return Guard("umpool_visit_spans", [&] {
    if (visit == nullptr) return Fail(absl::InvalidArgumentError("umpool_visit_spans: null visitor"));
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    if (umpool::Pool* p = ExistingPool(device)) VisitSpans(*p, PoolId{}, visit, ctx);
    for (auto& [id, p] : GraphPoolsOf(device)) VisitSpans(*p, id, visit, ctx);
    return static_cast<int>(UMPOOL_OK);
  });
}

int umpool_trim(int device) {
  return Guard("umpool_trim", [&] {
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    umpool::Pool* p = ExistingPool(device);
    if (p == nullptr) return static_cast<int>(UMPOOL_OK);
    absl::Status st = p->Trim();
    return Done(st);
  });
}

const char* umpool_last_error(void) { return LastError(); }
int umpool_last_error_code(void) { return LastErrorCode(); }
void umpool_clear_last_error(void) { ClearLastError(); }
const char* umpool_version(void) { return UMPOOL_VERSION_STRING; }
int umpool_role_count(void) { return umpool::kNumRoles; }
const char* umpool_role_name(int role) {
  if (role < 0 || role >= umpool::kNumRoles) return nullptr;
  static constexpr const char* kNames[] = {
#define UMPOOL_ROLE_C_NAME_(e, name, value) #name,
      UMPOOL_ROLES(UMPOOL_ROLE_C_NAME_)
#undef UMPOOL_ROLE_C_NAME_
  };
  return kNames[role];
}

}  // extern "C"
