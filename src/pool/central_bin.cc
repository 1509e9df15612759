// CentralBin: taking and returning blocks. Reclaiming empty slabs, pictures
// and checks are in central_bin_reclaim.cc.
#include "src/pool/central_bin.h"

#include <algorithm>
#include <utility>

namespace umpool::internal {

bool CentralBin::Carvable(Slab* slab, Stream stream, Fencer& fencer) {
  if (!slab->bound || slab->bound_stream == stream) return true;
  absl::StatusOr<FenceRef> f = fencer.FenceFor(slab->bound_stream, slab->bound_seq);
  if (!f.ok()) return false;
  absl::StatusOr<bool> done = fencer.Poll(**f);
  if (!done.ok() || !*done) return false;
  slab->bound = false;
  return true;
}

int CentralBin::Carve(Stream stream, Fencer& fencer, void** out, int max) {
  int got = 0;
  while (got < max && !partial_.empty()) {
    // The newest slab this stream may carve from.
    std::size_t k = partial_.size();
    while (k > 0 && !Carvable(partial_[k - 1], stream, fencer)) --k;
    if (k == 0) break;
    std::swap(partial_[k - 1], partial_.back());
    Slab* slab = partial_.back();
    const std::uint32_t blocks = slab->info().blocks;
    // Stay inside one 64-block group so that two threads' fresh blocks do
    // not share a cache line of records.
    const std::uint32_t group_left = Slab::kGroup - slab->carved % Slab::kGroup;
    const std::uint32_t n = std::min<std::uint32_t>(
        {static_cast<std::uint32_t>(max - got), blocks - slab->carved, group_left});
    for (std::uint32_t i = 0; i < n; ++i) out[got++] = slab->BlockAt(slab->carved + i);
    Change(slab, [&] { slab->carved += n; });
    if (slab->carved == blocks) partial_.pop_back();
    if (n == group_left) break;  // one group per call
  }
  return got;
}

TakeResult CentralBin::Take(Stream stream, void** out, int max, Fencer& fencer) {
  TakeResult r;
  MutexLock lock(&mu_);
  bool cross = false;
  auto pick = [&](BlockStack* own, BlockStack& ready) -> int {
    cross = own == nullptr || own->empty();
    return cross ? ready.TakeInto(out, max) : own->TakeInto(out, max);
  };
  auto to_ready = ToReady();
  r.count = free_.TakeReusable(stream, fencer, pick, to_ready, &r.status);
  if (r.count == 0) {
    r.count = Carve(stream, fencer, out, max);
    cross = false;
    if (r.count > 0) return r;  // fresh blocks: never in the lists
  }
  if (r.count == 0) r.count = free_.TakeFenced(stream, fencer, pick, to_ready, &r.status);
  CountIn(out, r.count, -1);
  if (cross) r.cross_stream = r.count;
  return r;
}

int CentralBin::TakeOrdered(void** out, int max, Fencer& fencer,
                            absl::FunctionRef<absl::Status(const Fences&)> order,
                            absl::Status* status) {
  MutexLock lock(&mu_);
  int got = 0;
  free_.ForEachPending([&](BlockStack& items, const Fences& fences) {
    if (got > 0 || items.empty()) return;
    Fences waits;
    fencer.AddOutstanding(fences, &waits);
    if (absl::Status st = order(waits); !st.ok()) {
      status->Update(st);
      got = -1;  // no other group either
      return;
    }
    got = items.TakeInto(out, max);
  });
  if (got <= 0) return 0;
  free_.DropEmptyPending();
  CountIn(out, got, -1);
  return got;
}

int CentralBin::AddSlabAndTake(Slab* slab, Stream stream, Fencer& fencer, void** out, int max) {
  MutexLock lock(&mu_);
  slabs_.push_back(slab);
  partial_.push_back(slab);
  empty_slabs_.fetch_add(1, std::memory_order_relaxed);  // nothing carved yet
  return Carve(stream, fencer, out, max);
}

void CentralBin::Put(Stream stream, void* const* blocks, int n, std::uint64_t seq) {
  MutexLock lock(&mu_);
  free_.OnStream(stream, seq).Add(blocks, n);
  CountIn(blocks, n, +1);
}

void CentralBin::PutReady(void* const* blocks, int n) {
  MutexLock lock(&mu_);
  free_.ready().Add(blocks, n);
  CountIn(blocks, n, +1);
}

void CentralBin::PutPending(Fences fences, void* block) {
  MutexLock lock(&mu_);
  BlockStack one;
  one.Add(block);
  free_.AddPending(std::move(fences), std::move(one));
  CountIn(&block, 1, +1);
}

void CentralBin::ReleaseStream(Stream stream) {
  MutexLock lock(&mu_);
  free_.ReadyStream(stream, ToReady());
  for (Slab* s : slabs_) {
    if (s->bound && s->bound_stream == stream) s->bound = false;
  }
}

std::int64_t CentralBin::slabs() const {
  MutexLock lock(&mu_);
  return static_cast<std::int64_t>(slabs_.size());
}

std::int64_t CentralBin::free_blocks() const {
  MutexLock lock(&mu_);
  std::int64_t n = static_cast<std::int64_t>(free_.size());
  for (const Slab* s : partial_) n += s->info().blocks - s->carved;
  return n;
}

}  // namespace umpool::internal
