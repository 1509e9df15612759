// The UMPOOL_CONF keys, once: the parser applies them, ConfDoc prints them
// with the defaults read from a default Conf and DefaultRolePolicy, so the
// documentation cannot drift from the code. A new option is a field of
// PoolOptions / RolePolicy, a row here and its use.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/capi/conf.h"

namespace umpool::capi {
namespace {

// An enum option: its names and values, in order.
template <class E>
using Names = std::vector<std::pair<const char*, E>>;

std::string FormatBytes(std::size_t b) {
  static constexpr std::pair<std::size_t, const char*> kUnits[] = {
      {std::size_t{1} << 40, "TiB"}, {std::size_t{1} << 30, "GiB"}, {std::size_t{1} << 20, "MiB"},
      {std::size_t{1} << 10, "KiB"}};
  for (auto [unit, name] : kUnits) {
    if (b != 0 && b % unit == 0) return absl::StrCat(b / unit, name);
  }
  return absl::StrCat(b);
}

absl::Status Bad(absl::string_view key, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("UMPOOL_CONF: bad value '", value, "' for key '", key, "': ", why));
}

// One key: how to set it from text, how to print a value, what it means.
// `T` is what the key applies to: the whole Conf, or one role's policy.
template <class T>
struct Key {
  const char* name;
  const char* values;  // for the documentation
  absl::Status (*set)(T&, absl::string_view key, absl::string_view value);
  std::string (*get)(const T&);
  const char* doc;
};

// Setters and printers by kind, for a member reached through Access.
template <class T, class Access>
absl::Status SetBytes(T& t, absl::string_view key, absl::string_view value) {
  absl::StatusOr<std::size_t> b = ParseBytes(value);
  if (!b.ok()) return Bad(key, value, b.status().message());
  Access::Of(t) = *b;
  return absl::OkStatus();
}
template <class T, class Access>
std::string GetBytes(const T& t) { return FormatBytes(Access::Of(t)); }

template <class T, class Access>
absl::Status SetBool(T& t, absl::string_view key, absl::string_view value) {
  absl::StatusOr<bool> b = ParseBool(value);
  if (!b.ok()) return Bad(key, value, "expected true/false, 1/0, yes/no or on/off");
  Access::Of(t) = *b;
  return absl::OkStatus();
}
template <class T, class Access>
std::string GetBool(const T& t) { return Access::Of(t) ? "true" : "false"; }

template <class T, class Access>
absl::Status SetFraction(T& t, absl::string_view key, absl::string_view value) {
  double d = 0;
  if (!absl::SimpleAtod(value, &d) || !(d >= 0 && d <= 1)) {
    return Bad(key, value, "expected a number from 0 to 1");
  }
  Access::Of(t) = d;
  return absl::OkStatus();
}
template <class T, class Access>
std::string GetFraction(const T& t) { return absl::StrCat(Access::Of(t)); }

template <class T, class Access, const auto& kNames>
absl::Status SetEnum(T& t, absl::string_view key, absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  std::vector<std::string> all;
  for (const auto& [name, e] : kNames) {
    if (v == name) {
      Access::Of(t) = e;
      return absl::OkStatus();
    }
    all.push_back(name);
  }
  return Bad(key, value, absl::StrCat("expected ", absl::StrJoin(all, ", ")));
}
template <class T, class Access, const auto& kNames>
std::string GetEnum(const T& t) {
  for (const auto& [name, e] : kNames) {
    if (Access::Of(t) == e) return name;
  }
  return "?";
}

// A key of each kind, its member named once (for the setter and the printer).
template <class T, class Access>
constexpr Key<T> BoolKey(const char* name, const char* doc) {
  return {name, "bool", SetBool<T, Access>, GetBool<T, Access>, doc};
}
template <class T, class Access>
constexpr Key<T> BytesKey(const char* name, const char* doc, const char* values = "size") {
  return {name, values, SetBytes<T, Access>, GetBytes<T, Access>, doc};
}
template <class T, class Access>
constexpr Key<T> FractionKey(const char* name, const char* doc) {
  return {name, "0..1", SetFraction<T, Access>, GetFraction<T, Access>, doc};
}
template <class T, class Access, const auto& kNames>
constexpr Key<T> EnumKey(const char* name, const char* values, const char* doc) {
  return {name, values, SetEnum<T, Access, kNames>, GetEnum<T, Access, kNames>, doc};
}

absl::Status SetPath(Conf& c, absl::string_view, absl::string_view value) {
  c.pool.trace_path = std::string(value);
  return absl::OkStatus();
}
std::string GetPath(const Conf& c) { return c.pool.trace_path.empty() ? "off" : c.pool.trace_path; }

// Members of Conf, through its PoolOptions.
template <class F, F PoolOptions::*M>
struct PoolField {
  static F& Of(Conf& c) { return c.pool.*M; }
  static const F& Of(const Conf& c) { return c.pool.*M; }
};
template <class F, F Conf::*M>
struct ConfField {
  static F& Of(Conf& c) { return c.*M; }
  static const F& Of(const Conf& c) { return c.*M; }
};
template <class F, F RolePolicy::*M>
struct RoleField {
  static F& Of(RolePolicy& p) { return p.*M; }
  static const F& Of(const RolePolicy& p) { return p.*M; }
};

constexpr std::pair<const char*, BackendKind> kBackends[] = {
    {"managed", BackendKind::kManaged}, {"device", BackendKind::kDevice}, {"host", BackendKind::kHost},
    {"vmm", BackendKind::kVmm}};
constexpr std::pair<const char*, Location> kLocations[] = {
    {"gpu", Location::kDevice}, {"cpu", Location::kHost}};
constexpr std::pair<const char*, AccessedBy> kAccessors[] = {
    {"cpu", AccessedBy::kCpu}, {"gpu", AccessedBy::kGpu}, {"none", AccessedBy::kNone}};
constexpr std::pair<const char*, PrefetchMode> kPrefetchModes[] = {
    {"below_threshold", PrefetchMode::kBelowThreshold},
    {"always", PrefetchMode::kAlways},
    {"never", PrefetchMode::kNever}};
constexpr std::pair<const char*, bool> kMemories[] = {{"managed", false}, {"device", true}};
constexpr std::pair<const char*, bool> kEvictions[] = {{"migrate", false}, {"staging", true}};

using P = PoolOptions;
using R = RolePolicy;

const Key<Conf> kConfKeys[] = {
    EnumKey<Conf, PoolField<BackendKind, &P::backend>, kBackends>(
        "backend", "`managed`, `device`, `host`, `vmm`",
        "where segments come from; `vmm`: GPU memory by CUDA's virtual memory API, populated "
        "as used, whose pages sleep gives back to the driver (docs/residency.md)"),
    BytesKey<Conf, PoolField<std::size_t, &P::capacity_bytes>>(
        "capacity", "cap on reserved bytes per device; 0 = the GPU's free memory at pool creation"),
    BoolKey<Conf, PoolField<bool, &P::allow_oversubscription>>(
        "allow_oversubscription",
        "allow a cap above the GPU's free memory (GH200 Extended GPU Memory)"),
    BoolKey<Conf, PoolField<bool, &P::thread_cache>>("thread_cache",
                                                     "per-thread caches (the lock-free hot path)"),
    BytesKey<Conf, PoolField<std::size_t, &P::thread_cache_bytes>>(
        "thread_cache_bytes", "most bytes a thread's cache holds"),
    BytesKey<Conf, PoolField<std::size_t, &P::thread_cache_max_class_bytes>>(
        "thread_cache_max_class", "largest class served through thread caches"),
    BoolKey<Conf, PoolField<bool, &P::drain_idle_caches>>(
        "drain_idle_caches",
        "empty idle threads' caches before the pool grows and in Trim (the cached pair 3-7% slower)"),
    BytesKey<Conf, PoolField<std::size_t, &P::stats_publish_bytes>>(
        "stats_publish_bytes", "allocated-bytes peak accuracy per thread (0 = exact)"),
    BoolKey<Conf, PoolField<bool, &P::release_on_oom>>(
        "release_on_oom", "when memory runs short, return free segments to CUDA before failing"),
    BoolKey<Conf, PoolField<bool, &P::give_back_free_pages>>(
        "give_back_free_pages",
        "before the pool's reserved memory passes its high-water mark and `give_back_slack` "
        "above its peak live memory, give back the free pages it holds (refilled when reused)"),
    FractionKey<Conf, PoolField<double, &P::give_back_slack>>(
        "give_back_slack",
        "room above peak live memory, as a fraction of it, that the pool may hold before it "
        "gives back free pages"),
    BoolKey<Conf, PoolField<bool, &P::reuse_pending_blocks>>(
        "reuse_pending_blocks",
        "serve a request from free memory other streams' work may still use by making its "
        "stream wait for that work on the device, rather than growing"),
    BoolKey<Conf, PoolField<bool, &P::activations_share_kv_space>>(
        "activations_share_kv_space",
        "activations' large blocks come from the KV cache's large space (so the cache grows "
        "into pages activations left free); `0`: a large space per role"),
    BoolKey<Conf, PoolField<bool, &P::staging_copies_by_sms>>(
        "staging_copies_by_sms",
        "evictions and fetches by staging copy large blocks by eight SMs (on managed memory the "
        "copy engines' copies hold up kernels on every stream while they run); `0`: by the copy "
        "engines"),
    BytesKey<Conf, PoolField<std::size_t, &P::pressure_watermark_bytes>>(
        "pressure_watermark",
        "call the pressure callback once when reserved memory passes this (0 = off)"),
    {"trace", "file path", SetPath, GetPath,
     "write every allocation, free and record_stream to this CSV file (trace.md); `%d` in the "
     "path becomes the device, otherwise devices other than 0 append `.dev<N>`. The path cannot "
     "contain `,`"},
    BoolKey<Conf, ConfField<bool, &Conf::raise_on_oom>>(
        kRaiseOnOomKey.data(),
        "the pluggable fallback's allocation throws (Python sees `RuntimeError`) instead of "
        "returning NULL; the C ABI never throws"),
};

const Key<RolePolicy> kRoleKeys[] = {
    EnumKey<R, RoleField<Location, &R::preferred>, kLocations>(
        "preferred", "`gpu`, `cpu`",
        "PreferredLocation advice of the role's segments; `cpu` for data the GPU reads once per "
        "step (with `accessed_by:gpu`), never prefetched"),
    EnumKey<R, RoleField<AccessedBy, &R::accessed_by>, kAccessors>(
        "accessed_by", "`cpu`, `gpu`, `none`", "AccessedBy advice of the role's segments"),
    EnumKey<R, RoleField<PrefetchMode, &R::prefetch>, kPrefetchModes>(
        "prefetch", "`below_threshold`, `always`, `never`",
        "when new segments are prefetched to the GPU"),
    BytesKey<R, RoleField<std::size_t, &R::prefetch_threshold_bytes>>(
        "prefetch_threshold", "with `below_threshold`: prefetch ranges smaller than this"),
    BoolKey<R, RoleField<bool, &R::read_mostly>>("read_mostly",
                                                 "ReadMostly advice (weights that never change)"),
    BoolKey<R, RoleField<bool, &R::discard_on_free>>(
        "discard",
        "discard the whole 2 MiB pages of a freed block the pool had evicted (stream-ordered, "
        "before reuse) so its dead contents are never migrated back"),
    EnumKey<R, RoleField<bool, &R::device_memory>, kMemories>(
        "memory", "`managed`, `device`",
        "`device`: plain device memory (`cudaMalloc`): no faults or migration, no CPU access, no "
        "prefetch/evict. Not with `read_mostly` or `discard`"),
    BytesKey<R, RoleField<std::size_t, &R::hbm_budget_bytes>>(
        "hbm_budget",
        "GPU budget of the role's large blocks: past it the least recently allocated or fetched "
        "are evicted to host memory, whole (0 = none)"),
    FractionKey<R, RoleField<double, &R::hbm_budget_slack>>(
        "hbm_budget_slack",
        "free pages the role may hold on the GPU past its budget, as a fraction of it, before "
        "they go back (apart from `give_back_slack`, the pool-wide room)"),
    EnumKey<R, RoleField<bool, &R::evict_by_staging>, kEvictions>(
        "evict", "`migrate`, `staging`",
        "how large blocks are evicted: `migrate` (the driver moves the pages; a kernel touching an "
        "evicted block faults it back) or `staging` (copied to pinned host memory, pages dropped: "
        "about 4x faster out on the H200; the engine must fetch a block before using it). "
        "`staging` needs `discard`"),
    BytesKey<R, RoleField<std::size_t, &R::slab_max_bytes>>(
        "slab_max",
        "requests up to this size use size-class slabs (thread-cached, tens of ns); larger ones "
        "are 512 B-granular best-fit blocks of the role's own large space",
        "size, at most `32MiB`"),
    BytesKey<R, RoleField<std::size_t, &R::slab_space_max_bytes>>(
        "slab_space_max",
        "slabs of size classes up to this size come from the heap's slab space; larger classes "
        "(up to `slab_max`) carve theirs from the role's large space, sharing its pages with the "
        "role's large blocks",
        "size"),
    BoolKey<R, RoleField<bool, &R::tail_last>>(
        "tail_last",
        "the role's large space uses the free pages ending a segment that can still grow only "
        "when no other free block holds the request (a steady workload's later cycles place "
        "blocks as its first did, and stop growing)"),
};

// "`v`", or "`a` for default, kv; `b` for weights, activations".
std::string RoleDefaults(const Key<RolePolicy>& k) {
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  for (int r = 0; r < kNumRoles; ++r) {
    const std::string v = k.get(DefaultRolePolicy(static_cast<Role>(r)));
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == v; });
    if (it == groups.end()) it = groups.insert(groups.end(), {v, {}});
    it->second.push_back(absl::StrCat("`", RoleName(static_cast<Role>(r)), "`"));
  }
  if (groups.size() == 1) return absl::StrCat("`", groups[0].first, "`");
  std::vector<std::string> parts;
  for (const auto& [v, roles] : groups) {
    parts.push_back(absl::StrCat("`", v, "` for ", absl::StrJoin(roles, ", ")));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

absl::Status ApplyKey(Conf& conf, absl::string_view key, absl::string_view value) {
  for (const Key<Conf>& k : kConfKeys) {
    if (key == k.name) return k.set(conf, key, value);
  }
  const std::size_t dot = key.find('.');
  if (dot == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("UMPOOL_CONF: unknown key '", key, "' (see docs/conf.md for the keys)"));
  }
  absl::StatusOr<Role> role = ParseRole(key.substr(0, dot));
  if (!role.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("UMPOOL_CONF: unknown key '", key, "': ",
                                                   role.status().message()));
  }
  const absl::string_view field = key.substr(dot + 1);
  std::vector<std::string> fields;
  for (const Key<RolePolicy>& k : kRoleKeys) {
    if (field == k.name) return k.set(conf.pool.roles[static_cast<int>(*role)], key, value);
    fields.push_back(k.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("UMPOOL_CONF: unknown key '", key,
                                                 "' (a role takes ", absl::StrJoin(fields, ", "),
                                                 ")"));
}

std::string ConfDoc() {
  const Conf defaults;
  std::string out = "| key | values | default | meaning |\n|---|---|---|---|\n";
  for (const Key<Conf>& k : kConfKeys) {
    absl::StrAppend(&out, "| `", k.name, "` | ", k.values, " | `", k.get(defaults), "` | ", k.doc,
                    " |\n");
  }
  for (const Key<RolePolicy>& k : kRoleKeys) {
    absl::StrAppend(&out, "| `<role>.", k.name, "` | ", k.values, " | ", RoleDefaults(k), " | ",
                    k.doc, " |\n");
  }
  return out;
}

}  // namespace umpool::capi
