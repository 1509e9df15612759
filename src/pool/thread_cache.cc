#include "src/pool/thread_cache.h"

#include <algorithm>
#include <cstring>
#include <thread>

namespace umpool::internal {

std::uint32_t ThreadCache::CapacityFor(std::size_t block_bytes) {
  const std::size_t by_bytes = (std::size_t{1} << 20) / block_bytes;  // ~1 MiB per bin
  return static_cast<std::uint32_t>(std::clamp<std::size_t>(by_bytes, 2, 64));
}

ThreadCache::ThreadCache(CentralCache* central, std::uint64_t pool_id, int cached_classes)
    : central_(central), pool_id_(pool_id), cached_classes_(cached_classes) {
  for (StreamSlot& s : slots_) {
    s.bins.reset(new Bin[static_cast<std::size_t>(kNumRoles) * cached_classes_]);
  }
}

ThreadCache::~ThreadCache() {
  for (StreamSlot& s : slots_) {
    for (int i = 0; i < kNumRoles * cached_classes_; ++i) delete[] s.bins[i].slots;
  }
}

ThreadCache::StreamSlot* ThreadCache::SlotFor(Stream stream) {
  int found = -1;
  for (int i = 0; i < kStreamSlots; ++i) {
    if (slots_[i].used && slots_[i].stream == stream) {
      found = i;
      break;
    }
  }
  if (found < 0) {
    // Claim an unused slot, else the least recently used (the last one).
    found = kStreamSlots - 1;
    for (int i = 0; i < kStreamSlots; ++i) {
      if (!slots_[i].used) {
        found = i;
        break;
      }
    }
    if (slots_[found].used) FlushSlot(slots_[found]);
    slots_[found].used = true;
    slots_[found].stream = stream;
    central_->StreamClaimed(stream);
  }
  // Move to the front: slots_ is kept in most-recently-used order.
  std::rotate(&slots_[0], &slots_[found], &slots_[found] + 1);
  return &slots_[0];
}

void ThreadCache::Flush(Stream stream, Role role, int size_class, Bin& bin, std::uint32_t keep) {
  if (bin.count <= keep) return;
  const std::uint32_t n = bin.count - keep;
  // Return the oldest blocks (bottom of the stack); keep the hot ones.
  central_->Return(stream, role, size_class, bin.slots, static_cast<int>(n));
  std::memmove(bin.slots, bin.slots + n, keep * sizeof(void*));
  bin.count = keep;
  cached_bytes.Add(-static_cast<std::int64_t>(n * kSizeClasses[size_class].size));
}

void ThreadCache::FlushSlot(StreamSlot& slot) {
  for (int r = 0; r < kNumRoles; ++r) {
    for (int c = 0; c < cached_classes_; ++c) {
      Bin& bin = slot.bins[r * cached_classes_ + c];
      if (bin.count > 0) Flush(slot.stream, static_cast<Role>(r), c, bin, 0);
    }
  }
}

void ThreadCache::FlushAll(bool unclaim) {
  for (StreamSlot& s : slots_) {
    if (s.used) FlushSlot(s);
    if (unclaim) s.used = false;
  }
}

void ThreadCache::Grow(Stream stream, Role role, int size_class, Bin& bin) {
  if (bin.slots == nullptr) {
    bin.cap = CapacityFor(kSizeClasses[size_class].size);
    bin.slots = new void*[bin.cap];
  } else {
    Flush(stream, role, size_class, bin, bin.cap / 2);
  }
}

ThreadCache::Bin& ThreadCache::PrepareBin(Stream stream, Role role, int size_class) {
  Bin& bin = BinFor(stream, role, size_class);
  if (bin.slots == nullptr) {
    bin.cap = CapacityFor(kSizeClasses[size_class].size);
    bin.slots = new void*[bin.cap];
  }
  return bin;
}

void ThreadCache::FlushOtherStreams(Stream stream, Role role, int size_class) {
  for (StreamSlot& s : slots_) {
    if (!s.used || s.stream == stream) continue;
    Bin& bin = s.bins[static_cast<int>(role) * cached_classes_ + size_class];
    if (bin.count > 0) Flush(s.stream, role, size_class, bin, 0);
  }
}

void ThreadCache::WaitWhileClaimed() {
  for (int spins = 0; claimed.load(std::memory_order_acquire); ++spins) {
    if (spins > 64) std::this_thread::yield();
  }
}

void ThreadCache::TakeAll(std::vector<TakenBin>* out) {
  for (StreamSlot& s : slots_) {
    if (!s.used) continue;
    for (int i = 0; i < kNumRoles * cached_classes_; ++i) {
      Bin& bin = s.bins[i];
      if (bin.count == 0) continue;
      out->push_back(TakenBin{s.stream, static_cast<Role>(i / cached_classes_), i % cached_classes_,
                              bin.slots, bin.count});
      bin = Bin{};  // the owner's next push makes a new array (Grow)
    }
  }
  cached_bytes.Set(0);
}

}  // namespace umpool::internal
