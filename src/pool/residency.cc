#include "src/pool/residency.h"

#include <algorithm>

namespace umpool::internal {
namespace {

bool AnyBudget(const std::array<std::size_t, kNumRoles>& budgets) {
  return std::any_of(budgets.begin(), budgets.end(), [](std::size_t b) { return b != 0; });
}

}  // namespace

Residency::Residency(const std::array<std::size_t, kNumRoles>& budgets, AtomicValue* host_total)
    : budgets_(budgets), any_budget_(AnyBudget(budgets)), host_total_(host_total) {
  for (int r = 0; r < kNumRoles; ++r) stats_[r].budget_bytes = budgets_[r];
}

void Residency::AddHost(Role role, std::int64_t delta) {
  stats_[static_cast<int>(role)].host_bytes += static_cast<std::size_t>(delta);  // wraps back for < 0
  host_total_->Add(delta);
}

void Residency::MakeResident(std::uintptr_t p, Entry& e) {
  RoleResidency& st = stats_[static_cast<int>(e.role)];
  if (!e.resident) {
    AddHost(e.role, -static_cast<std::int64_t>(e.bytes));
    if (budgeted(e.role)) {
      st.resident_bytes += e.bytes;
    }
    e.resident = true;
  } else if (budgeted(e.role)) {
    lru_[static_cast<int>(e.role)].erase(e.lru);
  }
  if (budgeted(e.role)) {
    auto& lru = lru_[static_cast<int>(e.role)];
    lru.push_front(p);
    e.lru = lru.begin();
  }
}

void Residency::MakeEvicted(Entry& e) {
  if (!e.resident) return;
  RoleResidency& st = stats_[static_cast<int>(e.role)];
  if (budgeted(e.role)) {
    lru_[static_cast<int>(e.role)].erase(e.lru);
    st.resident_bytes -= e.bytes;
  }
  AddHost(e.role, static_cast<std::int64_t>(e.bytes));
  e.resident = false;
}

void Residency::Trim(Role role, const std::vector<std::uintptr_t>& keep, Victims* out) {
  const int r = static_cast<int>(role);
  if (budgets_[r] == 0) return;
  std::size_t resident = stats_[r].resident_bytes;
  for (auto& v : out->ptrs) {  // victims already chosen (another role's pass) count as gone
    auto it = blocks_.find(reinterpret_cast<std::uintptr_t>(v));
    if (it != blocks_.end() && it->second.role == role && it->second.resident) {
      resident -= it->second.bytes;
    }
  }
  const std::size_t first = out->ptrs.size();
  for (auto it = lru_[r].rbegin(); it != lru_[r].rend() && resident > budgets_[r]; ++it) {
    if (std::find(keep.begin(), keep.end(), *it) != keep.end() || fetching_.contains(*it)) continue;
    const Entry& e = blocks_.at(*it);
    out->ptrs.push_back(reinterpret_cast<void*>(*it));
    out->sizes.push_back(e.bytes);
    if (e.fetched_on && std::find(out->fetched_on.begin(), out->fetched_on.end(), *e.fetched_on) ==
                            out->fetched_on.end()) {
      out->fetched_on.push_back(*e.fetched_on);
    }
    resident -= e.bytes;
  }
  // Evicted from now on (after the walk: it leaves the list): no other
  // allocation or fetch chooses them again while the pool moves them out
  // (a second copy out would read pages the first one dropped).
  for (std::size_t i = first; i < out->ptrs.size(); ++i) {
    MakeEvicted(blocks_.at(reinterpret_cast<std::uintptr_t>(out->ptrs[i])));
  }
}

void Residency::Allocated(Role role, std::uintptr_t p, std::size_t bytes, Victims* out) {
  if (!budgeted(role)) return;
  MutexLock lock(&mu_);
  // Every large free forgets its block; an entry still here would be stale,
  // so it is dropped from the counts first.
  if (auto old = blocks_.find(p); old != blocks_.end()) Forget(old->first);
  Entry& e = blocks_[p];
  e = Entry{role, bytes, /*resident=*/false, {}, std::nullopt};
  tracked_.store(blocks_.size(), std::memory_order_relaxed);
  AddHost(role, static_cast<std::int64_t>(bytes));  // MakeResident moves it over
  MakeResident(p, e);
  Trim(role, {p}, out);
}

void Residency::Moved(const std::vector<BlockInfo>& blocks, Location where, Stream stream,
                      Victims* out) {
  MutexLock lock(&mu_);
  std::vector<std::uintptr_t> keep;
  std::array<bool, kNumRoles> touched{};
  for (const BlockInfo& b : blocks) {
    const auto p = reinterpret_cast<std::uintptr_t>(b.ptr);
    RoleResidency& st = stats_[static_cast<int>(b.role)];
    auto it = blocks_.find(p);
    if (where == Location::kDevice) {
      ++st.fetches;
      st.fetched_bytes += b.bytes;
      if (it == blocks_.end()) continue;  // never evicted, not budgeted: nothing held
      keep.push_back(p);
      touched[static_cast<int>(b.role)] = true;
      MakeResident(p, it->second);
      it->second.fetched_on = stream;
      if (!budgeted(b.role)) {  // untracked again once back
        blocks_.erase(it);
        tracked_.store(blocks_.size(), std::memory_order_relaxed);
      }
      continue;
    }
    ++st.evictions;
    st.evicted_bytes += b.bytes;
    if (it == blocks_.end()) {  // an unbudgeted role's block: tracked while evicted
      blocks_.emplace(p, Entry{b.role, b.bytes, /*resident=*/false, {}, std::nullopt});
      tracked_.store(blocks_.size(), std::memory_order_relaxed);
      AddHost(b.role, static_cast<std::int64_t>(b.bytes));
      continue;
    }
    MakeEvicted(it->second);
  }
  for (int r = 0; r < kNumRoles; ++r) {
    if (touched[r]) Trim(static_cast<Role>(r), keep, out);
  }
}

void Residency::Evicted(const Victims& victims) {
  if (victims.empty()) return;
  MutexLock lock(&mu_);
  for (void* v : victims.ptrs) {
    auto it = blocks_.find(reinterpret_cast<std::uintptr_t>(v));
    if (it == blocks_.end()) continue;
    RoleResidency& st = stats_[static_cast<int>(it->second.role)];
    ++st.evictions;
    ++st.budget_evictions;
    st.evicted_bytes += it->second.bytes;
  }
}

void Residency::Unclaim(const Victims& victims) {
  if (victims.empty()) return;
  MutexLock lock(&mu_);
  for (void* v : victims.ptrs) {
    const auto p = reinterpret_cast<std::uintptr_t>(v);
    auto it = blocks_.find(p);
    if (it != blocks_.end() && !it->second.resident) MakeResident(p, it->second);
  }
}

Victims Residency::StillEvicted(const Victims& victims) const {
  Victims out;
  out.fetched_on = victims.fetched_on;
  MutexLock lock(&mu_);
  for (std::size_t i = 0; i < victims.ptrs.size(); ++i) {
    auto it = blocks_.find(reinterpret_cast<std::uintptr_t>(victims.ptrs[i]));
    if (it == blocks_.end() || it->second.resident) continue;
    out.ptrs.push_back(victims.ptrs[i]);
    out.sizes.push_back(victims.sizes[i]);
  }
  return out;
}

Victims Residency::Claim(const std::vector<void*>& blocks) {
  Victims out;
  if (!tracking()) return out;
  MutexLock lock(&mu_);
  for (void* v : blocks) {
    auto it = blocks_.find(reinterpret_cast<std::uintptr_t>(v));
    if (it == blocks_.end() || !budgeted(it->second.role) || !it->second.resident) continue;
    out.ptrs.push_back(v);
    out.sizes.push_back(it->second.bytes);
    MakeEvicted(it->second);
  }
  return out;
}

void Residency::BeginFetch(const std::vector<void*>& blocks) {
  if (!any_budget_) return;
  MutexLock lock(&mu_);
  for (void* b : blocks) ++fetching_[reinterpret_cast<std::uintptr_t>(b)];
}

void Residency::EndFetch(const std::vector<void*>& blocks) {
  if (!any_budget_) return;
  MutexLock lock(&mu_);
  for (void* b : blocks) {
    auto it = fetching_.find(reinterpret_cast<std::uintptr_t>(b));
    if (it != fetching_.end() && --it->second == 0) fetching_.erase(it);
  }
}

void Residency::Forget(std::uintptr_t p) {
  auto it = blocks_.find(p);
  if (it == blocks_.end()) return;
  Entry& e = it->second;
  RoleResidency& st = stats_[static_cast<int>(e.role)];
  if (e.resident) {
    if (budgeted(e.role)) {
      lru_[static_cast<int>(e.role)].erase(e.lru);
      st.resident_bytes -= e.bytes;
    }
  } else {
    AddHost(e.role, -static_cast<std::int64_t>(e.bytes));
  }
  blocks_.erase(it);
  tracked_.store(blocks_.size(), std::memory_order_relaxed);
}

void Residency::Freed(std::uintptr_t p) {
  MutexLock lock(&mu_);
  Forget(p);
}

RoleResidency Residency::Get(Role role) const {
  MutexLock lock(&mu_);
  return stats_[static_cast<int>(role)];
}

bool Residency::IsEvicted(std::uintptr_t p) const {
  if (!tracking()) return false;
  MutexLock lock(&mu_);
  auto it = blocks_.find(p);
  return it != blocks_.end() && !it->second.resident;
}

}  // namespace umpool::internal
