#include "src/capi/conf.h"

#include <cctype>
#include <limits>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace umpool::capi {
namespace {

absl::Status Bad(absl::string_view key, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("UMPOOL_CONF: bad value '", value, "' for key '", key, "': ", why));
}

}  // namespace

absl::StatusOr<bool> ParseBool(absl::string_view text) {
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a boolean"));
}

absl::StatusOr<std::size_t> ParseBytes(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  std::size_t digits = 0;
  while (digits < t.size() && (std::isdigit(static_cast<unsigned char>(t[digits])) || t[digits] == '.')) {
    ++digits;
  }
  if (digits == 0) return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a size"));
  double number = 0;
  if (!absl::SimpleAtod(t.substr(0, digits), &number) || number < 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a size"));
  }
  const std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(t.substr(digits)));
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "kib" || unit == "k") scale = 1024.0;
  else if (unit == "mib" || unit == "m") scale = 1024.0 * 1024;
  else if (unit == "gib" || unit == "g") scale = 1024.0 * 1024 * 1024;
  else if (unit == "tib" || unit == "t") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  else return absl::InvalidArgumentError(absl::StrCat("'", text, "' has an unknown unit '", unit, "'"));
  const double bytes = number * scale;
  if (bytes > static_cast<double>(std::size_t{1} << 50)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is larger than 1 PiB"));
  }
  if (unit.empty() && digits != t.size()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a size"));
  }
  return static_cast<std::size_t>(bytes);
}

absl::StatusOr<Conf> ParseConf(absl::string_view text) {
  Conf conf;
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    absl::string_view pair = absl::StripAsciiWhitespace(raw);
    if (pair.empty()) continue;
    const std::size_t colon = pair.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("UMPOOL_CONF: '", pair, "' is not a key:value pair"));
    }
    const std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(pair.substr(0, colon)));
    const absl::string_view value = absl::StripAsciiWhitespace(pair.substr(colon + 1));
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat("UMPOOL_CONF: key '", key, "' given twice"));
    }
    if (value.empty()) return Bad(key, value, "empty value");
    auto bytes = [&](std::size_t* out) -> absl::Status {
      absl::StatusOr<std::size_t> b = ParseBytes(value);
      if (!b.ok()) return Bad(key, value, b.status().message());
      *out = *b;
      return absl::OkStatus();
    };
    auto boolean = [&](bool* out) -> absl::Status {
      absl::StatusOr<bool> b = ParseBool(value);
      if (!b.ok()) return Bad(key, value, "expected true/false, 1/0, yes/no or on/off");
      *out = *b;
      return absl::OkStatus();
    };
    absl::Status st;
    if (key == "backend") {
      absl::StatusOr<BackendKind> k = ParseBackendKind(value);
      if (!k.ok()) return Bad(key, value, "expected managed, device or host");
      conf.pool.backend = *k;
    } else if (key == "capacity") {
      st = bytes(&conf.pool.capacity_bytes);
    } else if (key == "allow_oversubscription") {
      st = boolean(&conf.pool.allow_oversubscription);
    } else if (key == "thread_cache") {
      st = boolean(&conf.pool.thread_cache);
    } else if (key == "thread_cache_bytes") {
      st = bytes(&conf.pool.thread_cache_bytes);
    } else if (key == "thread_cache_max_class") {
      st = bytes(&conf.pool.thread_cache_max_class_bytes);
    } else if (key == "trace") {
      conf.pool.trace_path = std::string(value);
    } else if (key == "stats_publish_bytes") {
      st = bytes(&conf.pool.stats_publish_bytes);
    } else if (key == "raise_on_oom") {
      st = boolean(&conf.raise_on_oom);
    } else if (const std::size_t dot = key.find('.'); dot != std::string::npos) {
      absl::StatusOr<Role> role = ParseRole(key.substr(0, dot));
      if (!role.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "UMPOOL_CONF: unknown key '", key, "': '", key.substr(0, dot),
            "' is not a role (default, weights, kv, activations)"));
      }
      RolePolicy& p = conf.pool.roles[static_cast<int>(*role)];
      const std::string field = key.substr(dot + 1);
      const std::string v = absl::AsciiStrToLower(value);
      if (field == "accessed_by") {
        if (v == "cpu") p.accessed_by = AccessedBy::kCpu;
        else if (v == "gpu") p.accessed_by = AccessedBy::kGpu;
        else if (v == "none") p.accessed_by = AccessedBy::kNone;
        else return Bad(key, value, "expected cpu, gpu or none");
      } else if (field == "prefetch") {
        if (v == "below_threshold") p.prefetch = PrefetchMode::kBelowThreshold;
        else if (v == "always") p.prefetch = PrefetchMode::kAlways;
        else if (v == "never") p.prefetch = PrefetchMode::kNever;
        else return Bad(key, value, "expected below_threshold, always or never");
      } else if (field == "discard") {
        st = boolean(&p.discard_on_free);
      } else if (field == "read_mostly") {
        st = boolean(&p.read_mostly);
      } else if (field == "memory") {
        if (v == "managed") p.device_memory = false;
        else if (v == "device") p.device_memory = true;
        else return Bad(key, value, "expected managed or device");
      } else if (field == "prefetch_threshold") {
        st = bytes(&p.prefetch_threshold_bytes);
      } else if (field == "slab_max") {
        st = bytes(&p.slab_max_bytes);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "UMPOOL_CONF: unknown key '", key,
            "' (a role takes accessed_by, prefetch, prefetch_threshold, read_mostly, discard, "
            "memory or slab_max)"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "UMPOOL_CONF: unknown key '", key, "' (see docs/conf.md for the keys)"));
    }
    if (!st.ok()) return st;
  }
  if (absl::Status st = conf.pool.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("UMPOOL_CONF: ", st.message()));
  }
  return conf;
}

}  // namespace umpool::capi
