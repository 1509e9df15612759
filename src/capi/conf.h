// src/capi/conf.h: the UMPOOL_CONF configuration language.
//
// Like PYTORCH_CUDA_ALLOC_CONF: comma-separated `key:value` pairs, e.g.
//   UMPOOL_CONF="capacity:40GiB,kv.prefetch:never,kv.accessed_by:gpu"
// Keys (every one documented in docs/conf.md, with its default):
//   backend                    managed | device | host
//   capacity                   bytes with optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB); 0 = default
//   allow_oversubscription     bool
//   thread_cache               bool
//   thread_cache_bytes         bytes
//   thread_cache_max_class     bytes
//   stats_publish_bytes        bytes
//   raise_on_oom               bool: umpool_malloc throws (PyTorch sees an exception) or returns nullptr
//   <role>.accessed_by         cpu | gpu | none           (role: default, weights, kv, activations)
//   <role>.prefetch            below_threshold | always | never
//   <role>.prefetch_threshold  bytes
//   <role>.read_mostly         bool
//   <role>.discard             bool: discard freed blocks' whole 2 MiB pages
//   <role>.memory              managed | device
//   <role>.slab_max            bytes (<= 32 MiB): largest request served from size classes
// Bools: true/false, 1/0, yes/no, on/off. An unknown key, a bad value, a
// duplicate key or a malformed pair is an InvalidArgument naming it.
#ifndef UMPOOL_SRC_CAPI_CONF_H_
#define UMPOOL_SRC_CAPI_CONF_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "umpool/options.h"

namespace umpool::capi {

struct Conf {
  PoolOptions pool;  // `device` is set per pool by the C ABI
  bool raise_on_oom = true;
};

absl::StatusOr<Conf> ParseConf(absl::string_view text);
absl::StatusOr<std::size_t> ParseBytes(absl::string_view text);
absl::StatusOr<bool> ParseBool(absl::string_view text);

}  // namespace umpool::capi

#endif  // UMPOOL_SRC_CAPI_CONF_H_
