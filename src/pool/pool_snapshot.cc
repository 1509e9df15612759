// PoolCore::SnapshotJson: every span and block of the pool as JSON (format in
// docs/trace.md, "Snapshots"); tools/umpool-snapshot draws it.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {

std::string PoolCore::SnapshotJson() const {
  std::vector<SpanSnapshot> spans;
  for (const auto& heap : heap_store_) {
    for (const CentralBin& bin : heap->bins) bin.Snapshot(&spans);
    for (const LargeHeap& space : heap->large) space.Snapshot(&spans);
    heap->slab_space.Snapshot(&spans);
  }
  std::sort(spans.begin(), spans.end(),
            [](const SpanSnapshot& a, const SpanSnapshot& b) { return a.base < b.base; });
  const Stats st = GetStats();
  std::string out = absl::StrCat(
      "{\"umpool_snapshot\":1,\"device\":", options_.device, ",\"backend\":\"",
      backend_->Describe(), "\",\"allocated_bytes\":", st.allocated_bytes.current,
      ",\"allocated_peak\":", st.allocated_bytes.peak, ",\"reserved_bytes\":",
      st.reserved_bytes.current, ",\"reserved_peak\":", st.reserved_bytes.peak, ",\"spans\":[");
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const SpanSnapshot& s = spans[i];
    absl::StrAppend(&out, i == 0 ? "" : ",", "\n{\"base\":\"0x", absl::Hex(s.base),
                    "\",\"bytes\":", s.bytes, ",\"kind\":\"", s.slab ? "slab" : "segment",
                    "\",\"role\":\"", RoleName(s.role), "\",\"block_bytes\":", s.block_bytes,
                    ",\"device_memory\":", &BackendFor(s.role) != backend_.get() ? "true" : "false",
                    ",\"blocks\":[");
    for (std::size_t j = 0; j < s.blocks.size(); ++j) {
      const SnapBlock& b = s.blocks[j];
      SnapState state = b.state;
      // A large block waiting for its discard is free (the heap still holds it).
      if (!s.slab && state == SnapState::kLive && !discards_.empty() &&
          discards_.Contains(s.base + b.offset)) {
        state = SnapState::kFree;
      }
      absl::StrAppend(&out, j == 0 ? "" : ",", "[", b.offset, ",", b.bytes, ",", b.count, ",\"",
                      std::string(1, static_cast<char>(state)), "\"]");
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "\n]}\n");
  return out;
}

}  // namespace umpool::internal
