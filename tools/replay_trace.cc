#include "tools/replay_trace.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace umpool::replay {
namespace {

Role ParseRole(const std::string& s, std::size_t line) {
  if (s.empty() || s == "default") return Role::kDefault;
  if (s == "weights") return Role::kWeights;
  if (s == "kv") return Role::kKv;
  if (s == "activations") return Role::kActivations;
  Fail("line " + std::to_string(line) + ": unknown role '" + s + "'");
}

}  // namespace

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "umpool-replay: %s\n", why.c_str());
  std::exit(2);
}

Trace Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail("cannot open trace '" + path + "'");
  Trace t;
  absl::flat_hash_map<std::uint64_t, std::size_t> live;
  std::int64_t live_bytes = 0;
  std::string line;
  std::size_t n = 0;
  bool header = false;
  std::size_t fields = 7;  // the header says whether a thread column follows t_ns
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      if (line.rfind("op,", 0) != 0) Fail("line " + std::to_string(n) + ": expected the header 'op,id,bytes,device,stream,role,t_ns[,thread]'");
      fields = line == "op,id,bytes,device,stream,role,t_ns,thread" ? 8 : 7;
      header = true;
      continue;
    }
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() != fields || f[0].size() != 1) {
      Fail("line " + std::to_string(n) + ": expected " + std::to_string(fields) + " fields: " + line);
    }
    Op op{f[0][0], 0, 0, 0, Role::kDefault, 0};
    int stream = 0;
    if (!absl::SimpleAtoi(f[1], &op.id) || !absl::SimpleAtoi(f[2], &op.bytes) ||
        !absl::SimpleAtoi(f[4], &stream) || stream < 0 || stream > 1024 ||
        (fields == 8 && (!absl::SimpleAtoi(f[7], &op.thread) || op.thread < 0))) {
      Fail("line " + std::to_string(n) + ": bad number in: " + line);
    }
    if (op.thread >= kMaxThreads) {
      Fail("line " + std::to_string(n) + ": thread " + f[7] + ", above the replay's limit of " +
           std::to_string(kMaxThreads - 1) + ": " + line);
    }
    op.stream = stream;
    t.streams = std::max(t.streams, stream + 1);
    t.threads = std::max(t.threads, op.thread + 1);
    switch (op.kind) {
      case 'a':
        op.role = ParseRole(f[5], n);
        if (!live.emplace(op.id, op.bytes).second) Fail("line " + std::to_string(n) + ": id " + f[1] + " allocated twice");
        live_bytes += static_cast<std::int64_t>(op.bytes);
        ++t.allocations;
        if (live_bytes > t.peak_live) {
          t.peak_live = live_bytes;
          t.peak_live_at = t.ops.size();
        }
        break;
      case 'f': {
        auto it = live.find(op.id);
        if (it == live.end()) Fail("line " + std::to_string(n) + ": free of id " + f[1] + ", which is not live");
        op.bytes = it->second;
        live_bytes -= static_cast<std::int64_t>(it->second);
        live.erase(it);
        break;
      }
      case 'r':
        if (!live.contains(op.id)) Fail("line " + std::to_string(n) + ": record of id " + f[1] + ", which is not live");
        break;
      case 'm':
        if (f[5] == "warmup_end") t.warmup_end = t.ops.size();
        break;
      default:
        Fail("line " + std::to_string(n) + ": unknown op '" + f[0] + "'");
    }
    t.ops.push_back(op);
  }
  if (!header) Fail("'" + path + "' has no header line: not a umpool trace");
  return t;
}

Trace OneRole(Trace t) {
  for (Op& op : t.ops) op.role = Role::kDefault;
  return t;
}

Trace Repeat(Trace t, int times) {
  if (times <= 1) return t;  // moved out: a replay without --repeat copies nothing
  std::uint64_t span = 0;  // ids of run k are the first run's plus k * span
  for (const Op& op : t.ops) span = std::max(span, op.id + 1);
  Trace r;
  r.streams = t.streams;
  r.threads = t.threads;
  r.ops.reserve(t.ops.size() * static_cast<std::size_t>(times));
  std::int64_t live = 0;
  for (int k = 0; k < times; ++k) {
    for (Op op : t.ops) {
      if (op.kind == 'm') continue;
      op.id += static_cast<std::uint64_t>(k) * span;
      if (op.kind == 'a') {
        live += static_cast<std::int64_t>(op.bytes);
        ++r.allocations;
        if (live > r.peak_live) {
          r.peak_live = live;
          r.peak_live_at = r.ops.size();
        }
      } else if (op.kind == 'f') {
        live -= static_cast<std::int64_t>(op.bytes);
      }
      r.ops.push_back(op);
    }
    if (k == 0) r.warmup_end = r.ops.size();
  }
  return r;
}

}  // namespace umpool::replay
