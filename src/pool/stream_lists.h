// src/pool/stream_lists.h: the stream rules (invariant 2), written once.
//
// Every free list of the pool (a size class's blocks, a large space's blocks)
// keeps its free items in groups of three kinds:
//   on stream S : freed on S and not fenced yet. Reusable at once on S only:
//                 work on S runs in order.
//   pending     : waiting for fences (events) on one or more streams.
//   ready       : every fence completed. Reusable on any stream.
// StreamLists holds the groups and moves items between them; `List` is the
// container of one group (a stack of blocks for a size class, where any block
// fits; a best-fit set for large blocks). A request looks at them in a fixed
// order, in two steps so that the caller can put its fresh memory (a slab's
// never-carved blocks) between them:
//   TakeReusable: the caller's own stream group and the ready group; if
//                 nothing fits and fences are pending, they are polled once
//                 and the two groups are tried again. Large heaps poll
//                 first (`first_to`): a best fit must see every block it
//                 may reuse (see TakeReusable).
//   TakeFenced:   every other stream's group gets a fence now and moves to
//                 pending, pending is polled, and the two groups are tried
//                 again (this succeeds at once only if those streams are idle).
//                 A large heap's best-fit search fences them before step 1
//                 too (FenceOthers), so that their blocks are ready for the
//                 searches after it.
// Then the pending groups (ForEachPending): once the caller's stream waits
// for their fences on the device, a large heap makes their blocks the
// stream's (LargeHeap::AdoptPending) and a size class hands some over
// (CentralBin::TakeOrdered).
// The pool grows only when all of these find nothing.
//
// Fences are recorded lazily and shared (Fencer): a group remembers the newest
// stamp of the frees in it, and one event covering that stamp serves it.
//
// Errors: a group whose fence cannot be recorded or queried stays where it is,
// the other groups proceed, and the first error is reported through *status;
// the search goes on (the caller grows instead and counts the error). During
// a graph capture no event is recorded or queried: FenceFor fails with
// Unavailable (groups stay put) and polls say "not yet".
//
// `List` provides: Item; bool empty(); std::size_t size(); void Add(Item);
// void Splice(List&&) (moves every item in); void MarkPending() (its items now
// wait for fences: a large heap stops merging them); template ForEach(F) and
// EraseIf(Pred). Moving a group to ready goes through a `to_ready(List&&)`
// callback, so a large heap can merge each block with its free neighbours.
//
// Thread safety: none; the owning bin or heap holds its mutex around every call.
#ifndef UMPOOL_SRC_POOL_STREAM_LISTS_H_
#define UMPOOL_SRC_POOL_STREAM_LISTS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "src/pool/fence.h"

namespace umpool::internal {

// A handle no stream has: FenceOthers(kNoStream, ...) fences every group.
inline const Stream kNoStream = reinterpret_cast<Stream>(~std::uintptr_t{0});

template <class List>
class StreamLists {
 public:
  // The group of items freed on `stream` and not fenced yet, or nullptr.
  List* Own(Stream stream) {
    auto it = by_stream_.find(stream);
    return it == by_stream_.end() ? nullptr : &it->second.items;
  }
  // The group of `stream`, created if needed; its stamp rises to `seq` (the
  // Fencer stamp of the newest free being added).
  List& OnStream(Stream stream, std::uint64_t seq) {
    auto [it, created] = by_stream_.try_emplace(stream);
    if (created) order_.push_back(stream);
    Group& g = it->second;
    g.seq = std::max(g.seq, seq);
    return g.items;
  }
  // The stamp of `stream`'s group (0 if it has none).
  std::uint64_t StampOf(Stream stream) const {
    auto it = by_stream_.find(stream);
    return it == by_stream_.end() ? 0 : it->second.seq;
  }
  List& ready() { return ready_; }
  const List& ready() const { return ready_; }
  // Calls f(stream) for each stream whose group holds items.
  template <class F>
  void ForEachStream(F&& f) const {
    for (Stream s : order_) {
      if (!by_stream_.at(s).items.empty()) f(s);
    }
  }

  // Adds items that may be reused once every fence has completed.
  void AddPending(Fences fences, List items) {
    items.MarkPending();
    pending_.push_back(Pending{std::move(fences), std::move(items)});
  }

  // Step 1 of a search (see the file comment). `pick(List* own, List& ready)`
  // takes what it wants and returns it (falsy: nothing fits).
  //
  // `first_to` (a callback like `to_ready`, or nullptr): before the first
  // pick, pending groups whose fences have completed go through it, as
  // PyTorch's allocator processes its events before each malloc; a large
  // heap files them as the caller's stream's, merged with its free
  // neighbours (LargeHeap::Adopt). Without it, a large block freed with
  // another stream recorded on it stayed pending (apart, unmerged) while
  // later requests split other blocks: on serving traces whose 23 MiB
  // activations were recorded on a copy stream, one role's space held up to
  // 1.044 of peak live and made 1,111 backend calls after warm-up over 12
  // traces, against 1.029 and 10 (docs/arena-streams.md, "Completed pending
  // blocks are adopted first"). A size class's blocks all fit alike: its
  // bins poll only when nothing else fits.
  template <class Pick, class ToReady, class FirstTo = std::nullptr_t>
  auto TakeReusable(Stream stream, Fencer& fencer, Pick&& pick, ToReady&& to_ready,
                    absl::Status* status, FirstTo&& first_to = nullptr) {
    if constexpr (!std::is_same_v<std::decay_t<FirstTo>, std::nullptr_t>) {
      if (!pending_.empty()) status->Update(Poll(fencer, first_to));
    }
    auto got = pick(Own(stream), ready_);
    if (got || pending_.empty()) return got;
    status->Update(Poll(fencer, to_ready));
    return pick(Own(stream), ready_);
  }
  // Step 2: fence the other streams' groups, poll, and pick again.
  template <class Pick, class ToReady>
  auto TakeFenced(Stream stream, Fencer& fencer, Pick&& pick, ToReady&& to_ready,
                  absl::Status* status) {
    status->Update(FenceOthers(stream, fencer));
    status->Update(Poll(fencer, to_ready));
    return pick(Own(stream), ready_);
  }

  // Step 3, for a request that would otherwise grow the pool:
  // f(List& items, const Fences& fences) for each pending group; the caller
  // may take an item from one after ordering its stream behind that group's
  // fences (a stream wait: no host wait), then calls DropEmptyPending.
  template <class F>
  void ForEachPending(F&& f) {
    for (Pending& p : pending_) f(p.items, p.fences);
  }
  void DropEmptyPending() {
    std::erase_if(pending_, [](const Pending& p) { return p.items.empty(); });
  }

  // Moves every pending group whose fences have all completed through
  // `to_ready`. Never blocks.
  template <class ToReady>
  absl::Status Poll(Fencer& fencer, ToReady&& to_ready) {
    absl::Status first;
    MovePendingIf(
        [&](const Fences& fences) {
          for (const FenceRef& f : fences) {
            absl::StatusOr<bool> d = fencer.Poll(*f);
            if (!d.ok()) first.Update(d.status());
            if (!d.ok() || !*d) return false;
          }
          return true;
        },
        to_ready);
    return first;
  }

  // Pending groups whose every fence is on `stream` (its own frees, fenced
  // for other streams and not passed yet) go through `take`: `stream` may
  // reuse them at once, its work running in order. Never blocks.
  template <class Take>
  void TakeOwnPending(Stream stream, Take&& take) {
    MovePendingIf(
        [stream](const Fences& fences) {
          return std::all_of(fences.begin(), fences.end(),
                             [stream](const FenceRef& f) { return f->stream == stream; });
        },
        take);
  }

  // Records a fence on every stream group but `stream`'s (covering its stamp)
  // and moves the group to pending.
  absl::Status FenceOthers(Stream stream, Fencer& fencer) {
    absl::Status first;
    for (Stream s : order_) {
      Group& g = by_stream_.at(s);
      if (s == stream || g.items.empty()) continue;
      absl::StatusOr<FenceRef> f = fencer.FenceFor(s, g.seq);
      if (!f.ok()) {
        first.Update(f.status());
        continue;
      }
      List moved;
      std::swap(moved, g.items);
      AddPending(Fences{*std::move(f)}, std::move(moved));
    }
    return first;
  }

  // Fences every stream group and waits (host-blocking) for every pending
  // fence, then polls: afterwards everything is ready, unless an event
  // failed. Trim and the out-of-memory path only.
  template <class ToReady>
  absl::Status WaitAll(Fencer& fencer, ToReady&& to_ready) {
    absl::Status status = FenceOthers(kNoStream, fencer);
    for (const Pending& p : pending_) {
      for (const FenceRef& f : p.fences) status.Update(fencer.Wait(*f));
    }
    status.Update(Poll(fencer, to_ready));
    return status;
  }

  // `stream`'s work has completed (the caller waited for it: ReleaseStream):
  // its group goes through `to_ready` and the group is forgotten.
  template <class ToReady>
  void ReadyStream(Stream stream, ToReady&& to_ready) {
    auto it = by_stream_.find(stream);
    if (it == by_stream_.end()) return;
    List moved;
    std::swap(moved, it->second.items);
    by_stream_.erase(it);
    order_.erase(std::find(order_.begin(), order_.end(), stream));
    to_ready(std::move(moved));
  }

  // Calls f(items, where, stream, seq, fences) for every group: stream groups
  // (with their stream and stamp), pending groups (with their fences), ready.
  enum class Where : std::uint8_t { kStream, kPending, kReady };
  template <class F>
  void ForEachGroup(F&& f) const {
    for (Stream s : order_) {
      const Group& g = by_stream_.at(s);
      f(g.items, Where::kStream, s, g.seq, nullptr);
    }
    for (const Pending& p : pending_) f(p.items, Where::kPending, nullptr, 0, &p.fences);
    f(ready_, Where::kReady, nullptr, 0, nullptr);
  }
  // Removes the items for which pred(item) holds from every group.
  template <class Pred>
  void EraseIf(Pred&& pred) {
    for (auto& [s, g] : by_stream_) g.items.EraseIf(pred);
    for (Pending& p : pending_) p.items.EraseIf(pred);
    std::erase_if(pending_, [](const Pending& p) { return p.items.empty(); });
    ready_.EraseIf(pred);
  }
  std::size_t size() const {
    std::size_t n = ready_.size();
    for (const auto& [s, g] : by_stream_) n += g.items.size();
    for (const Pending& p : pending_) n += p.items.size();
    return n;
  }
  bool has_pending() const { return !pending_.empty(); }

 private:
  struct Group {
    List items;
    std::uint64_t seq = 0;  // newest stamp of a free in `items`
  };
  struct Pending {
    Fences fences;
    List items;
  };
  // Each pending group for which `pred(fences)` holds goes through
  // `take(List&&)` and leaves pending, in order.
  template <class Pred, class Take>
  void MovePendingIf(Pred&& pred, Take&& take) {
    std::size_t keep = 0;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (pred(pending_[i].fences)) {
        take(std::move(pending_[i].items));
      } else {
        if (keep != i) pending_[keep] = std::move(pending_[i]);
        ++keep;
      }
    }
    pending_.resize(keep);
  }
  absl::flat_hash_map<Stream, Group> by_stream_;
  // by_stream_'s streams in the order their groups were made: every walk
  // over the groups goes in this order. A hash map's order follows where
  // its table lies in host memory (absl salts its probes with the table's
  // address), and the order groups are fenced in decides the order their
  // blocks merge: placement would differ from run to run.
  std::vector<Stream> order_;
  std::vector<Pending> pending_;
  List ready_;
};

// The List of a size class: a stack of block addresses (any block fits).
class BlockStack {
 public:
  using Item = void*;
  bool empty() const { return blocks_.empty(); }
  std::size_t size() const { return blocks_.size(); }
  void Add(void* block) { blocks_.push_back(block); }
  void Add(void* const* blocks, int n) { blocks_.insert(blocks_.end(), blocks, blocks + n); }
  void Splice(BlockStack&& other) {
    if (blocks_.empty()) {
      blocks_.swap(other.blocks_);
    } else {
      blocks_.insert(blocks_.end(), other.blocks_.begin(), other.blocks_.end());
    }
    other.blocks_.clear();
  }
  void MarkPending() {}
  // Pops up to `max` blocks (the most recently freed first) into `out`.
  int TakeInto(void** out, int max) {
    const int n = static_cast<int>(std::min<std::size_t>(blocks_.size(), static_cast<std::size_t>(max)));
    std::copy(blocks_.end() - n, blocks_.end(), out);
    blocks_.resize(blocks_.size() - static_cast<std::size_t>(n));
    return n;
  }
  template <class F>
  void ForEach(F&& f) const {
    for (void* b : blocks_) f(b);
  }
  template <class Pred>
  void EraseIf(Pred&& pred) {
    std::erase_if(blocks_, pred);
  }

 private:
  std::vector<void*> blocks_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_STREAM_LISTS_H_
