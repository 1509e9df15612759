// src/pool/size_class.h: the size-class table, built at compile time.
//
// Rows (sizes are multiples of 256 B, the minimum alignment):
//   classes 0..7    : 256, 512, ..., 2048 (step 256)
//   classes 8..119  : eight classes per power of two, (2^k, 2^(k+1)] in steps
//                     of 2^k/8, for k = 11..24, up to 32 MiB
// Worst-case internal waste (class - request) / class: < 1/9 (11.1%) above
// 2 KiB, <= 12.45% for 1793..2048 B, and below that < 256 B (the alignment
// quantum, which no 256-byte-granular table can beat).
// Requests above kMaxClassBytes are large blocks (page-granular, 2 MiB).
//
// Each class has a slab size: the smallest multiple of 2 MiB that holds at
// least one block and leaves a tail (slab - blocks * size) of at most 1/8 of
// the slab. tools/umpool-size-classes prints the table with its waste.
#ifndef UMPOOL_SRC_POOL_SIZE_CLASS_H_
#define UMPOOL_SRC_POOL_SIZE_CLASS_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace umpool::internal {

inline constexpr std::size_t kClassQuantum = 256;
inline constexpr std::size_t kMaxClassBytes = std::size_t{32} << 20;
inline constexpr std::size_t kSlabGranularity = std::size_t{2} << 20;
inline constexpr int kSmallClasses = 8;       // 256..2048
inline constexpr int kClassesPerDoubling = 8;
static_assert(std::has_single_bit(static_cast<unsigned>(kClassesPerDoubling)));
inline constexpr int kFirstDoublingLog2 = 11;  // 2048
inline constexpr int kLastDoublingLog2 = 24;   // (16 MiB, 32 MiB]
inline constexpr int kNumClasses =
    kSmallClasses + (kLastDoublingLog2 - kFirstDoublingLog2 + 1) * kClassesPerDoubling;

struct SizeClassInfo {
  std::size_t size = 0;          // block bytes
  std::size_t slab_bytes = 0;    // bytes per slab (multiple of 2 MiB)
  std::uint32_t blocks = 0;      // blocks per slab
  std::size_t tail_bytes = 0;    // slab_bytes - blocks * size
  std::uint64_t reciprocal = 0;  // floor(2^64 / size) + 1, for exact offset / size
};

// Index of the class serving `bytes`, for 1 <= bytes <= kMaxClassBytes. O(1).
constexpr int SizeClassIndex(std::size_t bytes) {
  if (bytes <= std::size_t{1} << kFirstDoublingLog2) {
    return static_cast<int>((bytes + kClassQuantum - 1) / kClassQuantum) - 1 + (bytes == 0);
  }
  const int lg = std::bit_width(bytes - 1) - 1;  // 2^lg < bytes <= 2^(lg+1)
  const std::size_t base = std::size_t{1} << lg;
  // step = base / kClassesPerDoubling is a power of two: shift, never divide
  // (a 64-bit divide was the longest latency on the cached path).
  const int step_log2 = lg - std::countr_zero(static_cast<unsigned>(kClassesPerDoubling));
  const std::size_t step = std::size_t{1} << step_log2;
  const std::size_t k = (bytes - base + step - 1) >> step_log2;  // 1..8
  return kSmallClasses + (lg - kFirstDoublingLog2) * kClassesPerDoubling + static_cast<int>(k) - 1;
}

constexpr std::size_t SizeOfClass(int index) {
  if (index < kSmallClasses) return static_cast<std::size_t>(index + 1) * kClassQuantum;
  const int doubling = (index - kSmallClasses) / kClassesPerDoubling;
  const int k = (index - kSmallClasses) % kClassesPerDoubling + 1;
  const std::size_t base = std::size_t{1} << (kFirstDoublingLog2 + doubling);
  return base + static_cast<std::size_t>(k) * (base / kClassesPerDoubling);
}

constexpr SizeClassInfo MakeClassInfo(int index) {
  SizeClassInfo info;
  info.size = SizeOfClass(index);
  for (std::size_t m = 1;; ++m) {
    const std::size_t slab = m * kSlabGranularity;
    const std::size_t blocks = slab / info.size;
    if (blocks == 0) continue;
    const std::size_t tail = slab - blocks * info.size;
    if (tail * 8 <= slab) {
      info.slab_bytes = slab;
      info.blocks = static_cast<std::uint32_t>(blocks);
      info.tail_bytes = tail;
      break;
    }
  }
  info.reciprocal = ~std::uint64_t{0} / info.size + 1;
  return info;
}

constexpr std::array<SizeClassInfo, kNumClasses> BuildSizeClassTable() {
  std::array<SizeClassInfo, kNumClasses> table{};
  for (int i = 0; i < kNumClasses; ++i) table[i] = MakeClassInfo(i);
  return table;
}

inline constexpr std::array<SizeClassInfo, kNumClasses> kSizeClasses = BuildSizeClassTable();

static_assert(SizeOfClass(kNumClasses - 1) == kMaxClassBytes);
static_assert(SizeClassIndex(kMaxClassBytes) == kNumClasses - 1);
static_assert(SizeClassIndex(1) == 0 && SizeClassIndex(256) == 0 && SizeClassIndex(257) == 1);
static_assert(SizeClassIndex(2049) == kSmallClasses && SizeOfClass(kSmallClasses) == 2304);

__extension__ using Uint128 = unsigned __int128;

// offset / size for offset < 2^39, exact, without a divide instruction
// (reciprocal exceeds 2^64/size by < 1, so the error stays below 1/size).
inline std::uint64_t DivideByClass(std::uint64_t offset, const SizeClassInfo& info) {
  return static_cast<std::uint64_t>((static_cast<Uint128>(offset) * info.reciprocal) >> 64);
}

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SIZE_CLASS_H_
