#include "src/capi/conf.h"

#include <cctype>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace umpool::capi {
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

namespace {

// `text` applied to `conf`, then validated. `pool_only` (ParsePoolOptions):
// raise_on_oom, the one key that is no pool option, is refused.
absl::StatusOr<Conf> ParseOnto(absl::string_view text, Conf conf, bool pool_only) {
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
    if (pool_only && key == kRaiseOnOomKey) {
      return absl::InvalidArgumentError(absl::StrCat(
          "UMPOOL_CONF: key '", key, "' belongs to the C ABI's PyTorch fallback: it is no pool option"));
    }
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat("UMPOOL_CONF: key '", key, "' given twice"));
    }
    if (value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("UMPOOL_CONF: bad value '' for key '", key, "': empty value"));
    }
    if (absl::Status st = ApplyKey(conf, key, value); !st.ok()) return st;
  }
  if (absl::Status st = conf.pool.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("UMPOOL_CONF: ", st.message()));
  }
  return conf;
}

}  // namespace

absl::StatusOr<Conf> ParseConf(absl::string_view text) {
  return ParseOnto(text, Conf(), /*pool_only=*/false);
}

}  // namespace umpool::capi

namespace umpool {

absl::StatusOr<PoolOptions> ParsePoolOptions(std::string_view conf, const PoolOptions& base) {
  capi::Conf start;
  start.pool = base;
  absl::StatusOr<capi::Conf> parsed = capi::ParseOnto(
      absl::string_view(conf.data(), conf.size()), std::move(start), /*pool_only=*/true);
  if (!parsed.ok()) return parsed.status();
  return std::move(parsed->pool);
}

}  // namespace umpool
