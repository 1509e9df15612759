// PoolCore::Spans and SnapshotJson: every span and block of the pool (JSON
// format in docs/trace.md, "Snapshots"; tools/umpool-snapshot draws it).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {

std::vector<SpanInfo> PoolCore::Spans() const {
  std::vector<SpanInfo> spans;
  slabs_.Snapshot(&spans);
  arena_.Snapshot(&spans);
  std::sort(spans.begin(), spans.end(),
            [](const SpanInfo& a, const SpanInfo& b) { return a.base < b.base; });
  for (SpanInfo& s : spans) {
    s.device_memory = arena_.IsDeviceMemory(s.role);
    if (s.slab || discards_.empty()) continue;
    // A large block waiting for its discard is free (the heap still holds it).
    for (SpanBlocks& b : s.blocks) {
      if (b.state == kSnapLive && discards_.Contains(s.base + b.offset)) {
        b.state = kSnapFree;
        b.requested = 0;
      }
    }
  }
  return spans;
}

std::string PoolCore::SnapshotJson() const {
  const std::vector<SpanInfo> spans = Spans();
  const Stats st = GetStats();
  std::string out = absl::StrCat(
      "{\"umpool_snapshot\":1,\"device\":", options_.device, ",\"backend\":\"",
      backend_->Describe(), "\",\"allocated_bytes\":", st.allocated_bytes.current,
      ",\"allocated_peak\":", st.allocated_bytes.peak, ",\"requested_bytes\":",
      st.requested_bytes.current, ",\"reserved_bytes\":", st.reserved_bytes.current,
      ",\"reserved_peak\":", st.reserved_bytes.peak, ",\"spans\":[");
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const SpanInfo& s = spans[i];
    absl::StrAppend(&out, i == 0 ? "" : ",", "\n{\"base\":\"0x", absl::Hex(s.base),
                    "\",\"bytes\":", s.bytes, ",\"mapped_bytes\":", s.mapped_bytes, ",\"kind\":\"", s.slab ? "slab" : "segment",
                    "\",\"slab_space\":", s.slab_space ? "true" : "false", ",\"role\":\"",
                    RoleName(s.role), "\",\"block_bytes\":", s.block_bytes,
                    ",\"device_memory\":", s.device_memory ? "true" : "false", ",\"blocks\":[");
    for (std::size_t j = 0; j < s.blocks.size(); ++j) {
      const SpanBlocks& b = s.blocks[j];
      absl::StrAppend(&out, j == 0 ? "" : ",", "[", b.offset, ",", b.bytes, ",", b.count, ",\"",
                      std::string(1, b.state), "\",", b.requested, "]");
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "\n]}\n");
  return out;
}

}  // namespace umpool::internal
