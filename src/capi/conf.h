// src/capi/conf.h: the UMPOOL_CONF configuration language.
//
// Like PYTORCH_CUDA_ALLOC_CONF: comma-separated `key:value` pairs, e.g.
//   UMPOOL_CONF="capacity:40GiB,kv.prefetch:never,kv.accessed_by:gpu"
// The keys are the rows of one table (conf_table.cc), which the parser
// walks and ConfDoc() prints with each key's default (docs/conf.md is that
// output, checked by tests/conf_test.cc). A `<role>.` key exists for every
// role of umpool/roles.h. Bools: true/false, 1/0, yes/no, on/off. Sizes:
// bytes with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB). An
// unknown key, a bad value, a duplicate key or a malformed pair is an
// InvalidArgument naming it.
#ifndef UMPOOL_SRC_CAPI_CONF_H_
#define UMPOOL_SRC_CAPI_CONF_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "umpool/options.h"

namespace umpool::capi {

struct Conf {
  PoolOptions pool;  // `device` is set per pool by the C ABI
  // umpool::torch_hooks::Malloc (the pluggable fallback) throws on failure;
  // false: it returns NULL.
  bool raise_on_oom = true;
};

absl::StatusOr<Conf> ParseConf(absl::string_view text);

// The key of Conf::raise_on_oom: the one key that is not a pool option.
inline constexpr absl::string_view kRaiseOnOomKey = "raise_on_oom";
absl::StatusOr<std::size_t> ParseBytes(absl::string_view text);
absl::StatusOr<bool> ParseBool(absl::string_view text);

// The key table as Markdown: key, values, default, meaning.
std::string ConfDoc();

// Applies one key (lower case) to `conf` (conf_table.cc). InvalidArgument
// for an unknown key or a bad value.
absl::Status ApplyKey(Conf& conf, absl::string_view key, absl::string_view value);

}  // namespace umpool::capi

#endif  // UMPOOL_SRC_CAPI_CONF_H_
