// src/pool/best_fit_set.h: the List (stream_lists.h) of a large heap's
// groups: free blocks by size, then address.
//
// Thread safety: none; the owning heap holds its mutex around every call.
#ifndef UMPOOL_SRC_POOL_BEST_FIT_SET_H_
#define UMPOOL_SRC_POOL_BEST_FIT_SET_H_

#include <algorithm>
#include <cstddef>
#include <set>
#include <utility>
#include <vector>

#include "src/pool/segment.h"

namespace umpool::internal {

// Free blocks by size, then address; spare set nodes kept for reuse.
class BestFitSet {
 public:
  using Item = LargeBlock*;
  bool empty() const { return set_.empty(); }
  std::size_t size() const { return set_.size(); }
  void Add(LargeBlock* b) {
    if (spare_.empty()) {
      set_.insert(b);
      return;
    }
    Node n = std::move(spare_.back());
    spare_.pop_back();
    n.value() = b;
    set_.insert(std::move(n));
  }
  void Erase(LargeBlock* b) { Keep(set_.extract(b)); }
  bool Contains(LargeBlock* b) const { return set_.count(b) != 0; }
  void Splice(BestFitSet&& other) {
    set_.merge(other.set_);
    other.set_.clear();
  }
  void MarkPending() {
    for (LargeBlock* b : set_) b->where = LargeBlock::Where::kPending;
  }
  // The smallest block of at least `bytes`, or nullptr; with `tail_last`,
  // the smallest that does not end a segment that can still grow
  // (LargeBlock::EndsGrowableSegment; a set holds at most one per segment).
  LargeBlock* BestFit(std::size_t bytes, bool tail_last = false) const;
  // The smallest block of at least `bytes` for which `fits(block)` holds, or nullptr.
  template <class Pred>
  LargeBlock* BestFitWhere(std::size_t bytes, Pred&& fits) const {
    LargeBlock probe;
    probe.size = bytes;
    for (auto it = set_.lower_bound(&probe); it != set_.end(); ++it) {
      if (fits(*it)) return *it;
    }
    return nullptr;
  }
  // Removes and returns the smallest block (nullptr when empty).
  LargeBlock* PopFirst();
  // Moves the blocks for which `pred(block)` holds into `to`, each passed to `relabel(block)` on
  // the way: their set nodes move too (no allocation). A relabelled block must keep its size and
  // address.
  template <class Pred, class Relabel>
  void MoveIf(BestFitSet& to, Pred&& pred, Relabel&& relabel) {
    if (to.set_.size() < set_.size() && std::all_of(set_.begin(), set_.end(), pred)) {
      for (LargeBlock* b : set_) relabel(b);
      set_.merge(to.set_);  // the smaller set's nodes into the larger tree
      to.set_.swap(set_);
      return;
    }
    for (auto it = set_.begin(); it != set_.end();) {
      if (!pred(*it)) {
        ++it;
        continue;
      }
      Node n = set_.extract(it++);
      relabel(n.value());
      to.set_.insert(std::move(n));
    }
  }
  template <class F>
  void ForEach(F&& f) const {
    for (LargeBlock* b : set_) f(b);
  }
  template <class Pred>
  void EraseIf(Pred&& pred) {
    std::erase_if(set_, pred);
  }

 private:
  struct BySize {
    bool operator()(const LargeBlock* a, const LargeBlock* b) const {
      return a->size != b->size ? a->size < b->size : a->addr < b->addr;
    }
  };
  using Set = std::set<LargeBlock*, BySize>;
  using Node = Set::node_type;
  // Keeps an extracted node for the next Add (a block taken and freed again
  // then costs no allocation: about 10% of a large-block pair, callgrind).
  void Keep(Node n) {
    if (!n.empty() && spare_.size() < kSpareNodes) spare_.push_back(std::move(n));
  }
  static constexpr std::size_t kSpareNodes = 4;
  Set set_;
  std::vector<Node> spare_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_BEST_FIT_SET_H_
