// libFuzzer target: the UMPOOL_CONF parser never crashes, and whatever it
// accepts is a valid PoolOptions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "src/capi/conf.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<umpool::capi::Conf> conf = umpool::capi::ParseConf(text);
  if (conf.ok()) {
    if (!conf->pool.Validate().ok()) std::abort();  // accepted must mean valid
  } else if (conf.status().message().empty()) {
    std::abort();  // every rejection says why
  }
  (void)umpool::capi::ParseBytes(text);
  (void)umpool::capi::ParseBool(text);
  return 0;
}
