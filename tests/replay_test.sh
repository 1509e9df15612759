#!/bin/sh
# Memory efficiency on generated LLM-serving traces (both KV modes), replayed
# on the host backend: peak reserved / peak live must stay <= 1.05 (the
# issue's bound is 1.08; umpool measures 1.01-1.03), and a steady workload
# (the same requests served three times) makes no backend call after its
# first cycle. Recorded PyTorch workloads must not regress. Also checks the
# snapshot picture and the PyTorch-snapshot importer.
#   replay_test.sh SOURCE_DIR UMPOOL_REPLAY
set -eu
src=$1
replay=$2
seed=${UMPOOL_TEST_SEED:-20261127}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[ seed ] $seed (set UMPOOL_TEST_SEED to repeat)"
for mode in blocks per-layer; do
  python3 "$src/tools/umpool-tracegen" --seed "$seed" --kv-mode "$mode" -o "$work/$mode.csv"
  "$replay" "$work/$mode.csv" --backend host --quiet --max-ratio 1.05 \
      --snapshot "$work/$mode.json" --json "$work/$mode.result.json"
  python3 - "$work/$mode.result.json" "$work/$mode.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
assert r["peak_live_bytes"] > 20 << 30, r          # the 8B-shaped trace
assert r["hit_rate"] > 0.9, r
s = json.load(open(sys.argv[2]))
assert s["umpool_snapshot"] == 1 and s["spans"], "empty snapshot"
segs = [x for x in s["spans"] if x["kind"] == "segment"]
used = sum(b[1] * b[2] for x in segs for b in x["blocks"] if b[3] not in "FB")
assert used <= s["reserved_bytes"], (used, s["reserved_bytes"])
# Per-role figures at peak live: the roles' live blocks are the live bytes
# (block sizes round up a little), and each role's reserved bytes cover them.
roles = r["roles_at_peak_live"]
alloc = sum(v["allocated_bytes"] for v in roles.values())
assert r["peak_live_bytes"] <= alloc <= r["peak_live_bytes"] * 1.01, (alloc, r["peak_live_bytes"])
assert all(v["reserved_bytes"] >= v["allocated_bytes"] for v in roles.values()), roles
assert sum(v["reserved_bytes"] for v in roles.values()) <= r["peak_reserved_bytes"], roles
print("ratio %.4f, %d backend calls" % (r["ratio"], r["backend_calls"]))
PY
done
# The ideal best-fit model of a space partition (tools/umpool-fit-model):
# peak populated covers peak live, and its spaces' populated bytes (which
# never shrink) add up to that peak; the pages under live blocks at their
# peak lie between the two.
for partition in one umpool; do
  python3 "$src/tools/umpool-fit-model" "$work/blocks.csv" --partition "$partition" --tail-last \
      >"$work/model-$partition.txt"
  python3 - "$work/model-$partition.txt" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
live, peak, ratio = map(float, re.search(
    r"peak live ([0-9.]+) MiB, peak populated ([0-9.]+) MiB, ratio ([0-9.]+)", lines[0]).groups())
spaces = [float(re.search(r"populated ([0-9.]+) MiB", l).group(1)) for l in lines[1:-1]]
assert spaces and ratio >= 1 and peak >= live, lines
assert abs(sum(spaces) - peak) < 0.2, (sum(spaces), peak)
under = float(re.search(r"pages under live blocks at their peak: ([0-9.]+) MiB", lines[-1]).group(1))
assert live <= under <= peak, (live, under, peak)
print(lines[0])
PY
done
# Oversubscription (issue 16): capped at 90% of its peak live bytes, the
# serving trace completes with a pressure callback that evicts the oldest
# live blocks (evicted blocks do not count against the cap), and without one
# fails cleanly: exit 1, every failed allocation counted, the first named.
"$replay" "$work/blocks.csv" --backend host --quiet --cap-live 0.9 --pressure evict \
    --json "$work/evict.json"
if "$replay" "$work/blocks.csv" --backend host --quiet --cap-live 0.9 --json "$work/none.json" \
    2>"$work/err"; then
  echo "the capped replay without a callback did not fail"; exit 1
fi
grep -q "allocations failed; the first: RESOURCE_EXHAUSTED: umpool: out of memory" "$work/err"
python3 - "$work/evict.json" "$work/none.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["results"][0]["pressure"]
n = json.load(open(sys.argv[2]))["results"][0]["pressure"]
assert e["ooms"] == 0 and e["evictions"] > 0 and e["callbacks"] > 0, e
assert n["ooms"] > 0 and n["callbacks"] == 0 and "cap of" in n["first_oom"], n
print("pressure: 0 failures with %d evictions (%.0f MiB); %d failures without the callback"
      % (e["evictions"], e["evicted_bytes"] / 2**20, n["ooms"]))
PY
for mode in blocks per-layer; do
  python3 "$src/tools/umpool-tracegen" --seed "$seed" --kv-mode "$mode" --steps 60 --cycles 3 \
      -o "$work/steady-$mode.csv"
  # Issue 14 asks for 0 backend calls after warm-up: 0 on each of the 90
  # six-cycle traces of seeds 1-45 since the KV cache's space takes its free tail
  # last (thirty-second session, docs/arena-cycles.md "The tail last"; 8
  # traces made one before, 0-11 per run before the fifteenth session).
  "$replay" "$work/steady-$mode.csv" --backend host --quiet --steady --steady-calls 0 \
      --max-ratio 1.05
  "$replay" "$work/steady-$mode.csv" --backend host --quiet --steady --steady-calls 0 \
      --max-ratio 1.05 --keep-free-pages
  # Fences that complete late, as on a GPU (events done 100 trace ops after
  # they are recorded): pending blocks are reused behind stream waits
  # (reuse_pending_blocks), so the same bounds hold. Without it: hundreds of
  # calls after warm-up and up to 1.036 (twenty-seventh session).
  "$replay" "$work/steady-$mode.csv" --backend host --quiet --steady --steady-calls 0 \
      --max-ratio 1.05 --event-lag 100
done
# Recorded PyTorch workloads (bench/traces, H200): <= 1.05 on every one and
# below PyTorch's native and expandable-segments figures (native 1.077 /
# 1.137 / 1.182, expandable segments 1.033 / 1.096 / 1.127:
# bench/traces/README.md). Host replay: 1.016 / 1.020 / 1.036 (32nd session;
# 1.016 / 1.017 / 1.036 in the 28th); with --keep-free-pages (nothing given
# back) 1.036 / 1.096 / 1.122, which must not get worse either. Bare blocks show in the snapshot picture.
# Thirty-fifth session, slabs of the default role's 256 KiB-1 MiB classes in
# its large space (RolePolicy::slab_space_max_bytes): 1.018 / 1.016 / 1.041,
# kept 1.028 / 1.097 / 1.148 (compile, a 392 MiB program: the pieces either
# side of its 2 MiB-aligned slab ranges), hence compile's kept bound 1.15.
# Thirty-eighth session: beam search (4 beams) and ViT training (bf16
# autocast, AdamW), recorded on the H200: host 1.029 / 1.023 (kept 1.038 /
# 1.022); PyTorch native 1.121 / 1.279, expandable segments 1.030 / 1.013.
for t in generate:1.03:1.05 train:1.05:1.10 compile:1.05:1.15 beam:1.04:1.05 vit:1.04:1.04; do
  name=${t%%:*} rest=${t#*:}
  bound=${rest%%:*} kept=${rest#*:}
  cat "$src/bench/traces/$name"/part-*.csv.gz | gzip -dc >"$work/$name.csv"
  "$replay" "$work/$name.csv" --backend host --quiet --max-ratio "$bound" \
      --json "$work/$name.result.json" --snapshot "$work/$name.snap.json"
  "$replay" "$work/$name.csv" --backend host --quiet --max-ratio "$kept" --keep-free-pages \
      --json "$work/$name.kept.json"
  python3 - "$work/$name.result.json" "$work/$name.kept.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
k = json.load(open(sys.argv[2]))["results"][0]
print("%s (recorded): ratio %.4f, %d backend calls, %d after warm-up; pages kept: %.4f, %d, %d"
      % (sys.argv[3], r["ratio"], r["backend_calls"], r["backend_calls_after_warmup"],
         k["ratio"], k["backend_calls"], k["backend_calls_after_warmup"]))
PY
done
# A training loop settles (forty-ninth session): the recorded training's step 6
# (its longest batch) played 40 times (tools/umpool-trace-loop), no backend call
# after the twentieth. With umpool.torch's profile (give_back_slack:0.01) the pool
# dropped and refilled pages twice a step, forever, before a repeated request
# could grow into a band (docs/arena.md). Bad input to the tool exits 2.
"$src/tools/umpool-trace-loop" "$work/train.csv" -o "$work/train-loop.csv" --first 6 \
    --repeats 40 --warm-up 20 >/dev/null
for conf in drain_idle_caches:off,give_back_slack:0.03 drain_idle_caches:on,give_back_slack:0.01; do
  "$replay" "$work/train-loop.csv" --backend host --quiet --steady --steady-calls 0 \
      --max-ratio 1.03 --conf "$conf"
done
if "$src/tools/umpool-trace-loop" "$work/train.csv" -o "$work/bad.csv" --first 60 2>/dev/null; then
  echo "umpool-trace-loop accepted a step the trace does not have" >&2
  exit 1
fi
printf 'op,id,bytes,device,stream,role,t_ns\na,x,4\n' >"$work/malformed.csv"
set +e
"$src/tools/umpool-trace-loop" "$work/malformed.csv" -o "$work/bad.csv" --first 0 2>"$work/loop.err"
rc=$?
set -e
if [ $rc -ne 2 ] || ! grep -q "not a umpool trace" "$work/loop.err"; then
  echo "umpool-trace-loop on a malformed trace: exit $rc, $(cat "$work/loop.err")" >&2
  exit 1
fi
# --conf: an option tried on a recorded workload without a rebuild
# (umpool::ParsePoolOptions). The ViT training's 256 KiB-1 MiB slabs in the
# slab space instead of the large space: host 1.023 -> 1.014 (thirty-eighth
# session). A bad key fails with the key named.
"$replay" "$work/vit.csv" --backend host --quiet --json "$work/vit.conf.json" \
    --conf default.slab_space_max:1MiB
python3 - "$work/vit.result.json" "$work/vit.conf.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["results"][0]
c = json.load(open(sys.argv[2]))["results"][0]
assert c["peak_live_bytes"] == d["peak_live_bytes"], (c, d)
assert c["peak_reserved_bytes"] != d["peak_reserved_bytes"], "--conf changed nothing"
print("vit with --conf default.slab_space_max:1MiB: %.4f (default %.4f)" % (c["ratio"], d["ratio"]))
PY
if "$replay" "$work/vit.csv" --backend host --quiet --conf default.slab_spaec_max:1MiB 2>"$work/err"; then
  echo "a bad --conf key was accepted"; exit 1
fi
grep -q "unknown key 'default.slab_spaec_max'" "$work/err"
if "$replay" "$work/vit.csv" --backend host --quiet --conf backend:managed 2>"$work/err"; then
  echo "--conf chose the backend"; exit 1
fi
grep -q "the backend is --backend's to choose" "$work/err"
# --repeat: the ViT program run three times in one pool (what one run leaves
# live stays), the warm-up mark at the end of the first run. Its repetitions
# settle: host, thirty-ninth session, 1.020 with 1 call after the first run
# (4 runs: 1.025, 2 calls; give_back_slack 0.0125: 1.014, 25). A count of 0
# is refused.
"$replay" "$work/vit.csv" --backend host --quiet --repeat 3 --json "$work/vit.repeat.json" \
    2>"$work/err"
grep -q "3 runs" "$work/err"
python3 - "$work/vit.result.json" "$work/vit.repeat.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["results"][0]
r = json.load(open(sys.argv[2]))["results"][0]
assert r["peak_live_bytes"] >= d["peak_live_bytes"], (r, d)
assert r["ratio"] <= 1.04 and r["backend_calls_after_warmup"] <= 10, r
print("vit --repeat 3: %.4f, %d calls after the first run" % (r["ratio"], r["backend_calls_after_warmup"]))
PY
if "$replay" "$work/vit.csv" --backend host --quiet --repeat 0 2>"$work/err"; then
  echo "--repeat 0 was accepted"; exit 1
fi
grep -q "repeat needs a count" "$work/err"
# The recorded training with its saved activations offloaded on a side stream
# (tools/umpool-trace-offload; the pattern of bench/torch/multistream.py),
# the copies done at once, 3, 100 and 1000 trace ops late: <= 1.05 and at most
# 40 backend calls after the first cycle (host, twenty-eighth session: 1.015-
# 1.016, 0-6 calls at lags 0-1000; thirty-first session, completed pending
# blocks adopted before a search: 1.009-1.020 with 0-39 calls, pages dropped
# and refilled within the room, the price of 1,111 -> 10 calls and 1.044 ->
# 1.029 on one-role serving traces: docs/arena-streams.md; thirty-second, the
# parked-block rule: 1.014-1.019 with 0-11 calls; thirty-third, that rule
# only in tail-last spaces: 1.009-1.020 with 0-39 calls again).
# Before, 1.170 at lags 0 and 100 (a
# refill of bare pages kept the space's free tail), then 1.133 at lag 3 (a
# refill chosen where growing in place populated fewer pages). Waiting for
# the copies instead of reusing behind a stream wait holds 1.855 at lag 1000
# (the H200 run of the program: 1.842-1.897).
python3 "$src/tools/umpool-trace-offload" "$work/train.csv" -o "$work/offload.csv"
for lag in 0 3 100 1000; do
  "$replay" "$work/offload.csv" --backend host --quiet --steady --steady-calls 40 --max-ratio 1.05 \
      --event-lag $lag
done
"$replay" "$work/offload.csv" --backend host --quiet --event-lag 1000 --wait-pending \
    --json "$work/offload.wait.json"
python3 - "$work/offload.wait.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
assert r["ratio"] > 1.3, r  # the trace does hold blocks pending on the copies
print("offload trace: %.4f when pending blocks wait for their copies" % r["ratio"])
PY
# The same program recorded on the H200 (bench/torch/multistream.py --trace:
# its offloaded cycles, bench/traces/offload), and under the vmm backend's
# rules (--backend host-vmm: drops wait on the host, so blocks freed on the
# caller's stream went only once fenced): <= 1.05 at every lag. Twenty-ninth
# session: 1.010-1.033 under both rules; vmm rules before 1.162-1.248 (the
# H200's backend:vmm run 1.493, after 1.030). The recorded training and
# compile traces and the offload model under vmm rules: <= 1.05 (before:
# 1.097, 1.122; after 1.017, 1.036, 1.015, as managed memory's).
cat "$src/bench/traces/offload"/part-*.csv.gz | gzip -dc >"$work/offload-h200.csv"
for backend in host host-vmm; do
  for lag in 0 3 100 1000; do
    "$replay" "$work/offload-h200.csv" --backend $backend --quiet --max-ratio 1.05 --event-lag $lag
  done
done
for name in train compile offload; do
  "$replay" "$work/$name.csv" --backend host-vmm --quiet --max-ratio 1.05
done
# Pending blocks that wait for their events (reuse_pending_blocks:0) with the
# events 10 trace ops late: the recorded offload program and the steady
# per-layer trace with every block in the default role (a PyTorch program's
# view) <= 1.05. Before the fortieth session 1.235 and 1.869: every search
# fenced the other streams' free blocks again with a newer event, and a
# stream took its own back before the event completed, so no block ever
# became ready to cross streams or merge across them (docs/arena-streams.md,
# "No fences at every search without stream waits").
"$replay" "$work/offload-h200.csv" --backend host --quiet --max-ratio 1.05 --event-lag 10 \
    --conf reuse_pending_blocks:0
"$replay" "$work/steady-per-layer.csv" --one-role --backend host --quiet --max-ratio 1.05 \
    --event-lag 10 --conf reuse_pending_blocks:0
python3 "$src/tools/umpool-snapshot" "$work/train.snap.json" -o "$work/bare.svg"
python3 "$src/tools/umpool-snapshot" "$work/blocks.json" -o "$work/pool.svg"
python3 - "$work/pool.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
rects = [e for e in root.iter() if e.tag.endswith("rect")]
assert len(rects) > 100, len(rects)
print("svg: %d rects" % len(rects))
PY
# A PyTorch snapshot (same structure as torch.cuda.memory._snapshot()):
# imported, replayed, and a bad file refused.
python3 - "$work/torch.pickle" <<'PY'
import pickle, sys
ev = []
for step in range(50):
    for i in range(8):
        ev.append(dict(action="alloc", addr=0x10000 * (i + 1), size=4096 << i, stream=0, time_us=step * 100 + i))
    for i in range(8):
        ev.append(dict(action="free_requested", addr=0x10000 * (i + 1), size=4096 << i, stream=0, time_us=step * 100 + 50 + i))
        ev.append(dict(action="free_completed", addr=0x10000 * (i + 1), size=4096 << i, stream=0, time_us=step * 100 + 51 + i))
ev.insert(0, dict(action="free_requested", addr=0x999, size=1, stream=0, time_us=0))  # before recording
pickle.dump({"segments": [], "device_traces": [ev]}, open(sys.argv[1], "wb"))
PY
python3 "$src/tools/umpool-trace-from-torch" "$work/torch.pickle" -o "$work/torch.csv"
test "$(grep -c '^a,' "$work/torch.csv")" -eq 400
test "$(grep -c '^f,' "$work/torch.csv")" -eq 400
"$replay" "$work/torch.csv" --backend host --quiet --steady
echo "not a pickle" > "$work/bad.pickle"
if python3 "$src/tools/umpool-trace-from-torch" "$work/bad.pickle" -o "$work/bad.csv" 2>"$work/err"; then
  echo "a bad snapshot was accepted"; exit 1
fi
grep -q "cannot read" "$work/err"
# A malformed trace is refused with the line named.
printf 'op,id,bytes,device,stream,role,t_ns\na,1,10,0,0,kv,0\nf,2,0,0,0,,1\n' > "$work/bad.csv"
if "$replay" "$work/bad.csv" --quiet 2>"$work/err"; then echo "a bad trace was accepted"; exit 1; fi
grep -q "line 3" "$work/err"
# A trace with a thread column (what the pool records) runs each op on its
# thread: replayed with the pool recording its own trace, the frees of thread
# 1 are recorded on a second thread and the rest on the first; with
# --one-thread all on one. The same peak live either way. (64 KiB blocks
# freed on thread 1 sit in its cache, so thread 0's next ones need slabs of
# their own: the autograd thread's effect, 8494 against 8464 MiB on the ViT
# training, forty-sixth session.)
python3 - "$work/threads.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("# umpool trace v1\nop,id,bytes,device,stream,role,t_ns,thread\n")
    for i in range(64):
        f.write(f"a,{i + 1},65536,0,0,default,{i},0\n")
    for i in range(64):
        f.write(f"f,{i + 1},0,0,0,,{100 + i},1\n")
    for i in range(64):
        f.write(f"a,{i + 101},65536,0,0,default,{200 + i},0\n")
    for i in range(64):
        f.write(f"f,{i + 101},0,0,0,,{300 + i},0\n")
PY
"$replay" "$work/threads.csv" --backend host --quiet --json "$work/threads.json" \
    --conf "trace:$work/rec-threads.csv" >/dev/null
"$replay" "$work/threads.csv" --backend host --quiet --one-thread --json "$work/one.json" \
    --conf "trace:$work/rec-one.csv" >/dev/null
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
two, one = (json.load(open(f"{w}/{n}.json"))["results"][0] for n in ("threads", "one"))
assert two["peak_live_bytes"] == one["peak_live_bytes"] == 64 * 65536, (two, one)
def threads(path):
    rows = [l.split(",") for l in open(path).read().splitlines() if l[:2] in ("a,", "f,")]
    assert len(rows) == 256 and all(len(r) == 8 for r in rows), rows[:3]
    return [r[7] for r in rows]
t = threads(f"{w}/rec-threads.csv")
assert len(set(t[64:128])) == 1 and t[64] != t[0], t[60:70]
assert set(t[:64] + t[128:]) == {t[0]}, t
assert len(set(threads(f"{w}/rec-one.csv"))) == 1
print("threads: recorded on %d threads (one: 1); peak reserved %d / %d MiB"
      % (len(set(t)), two["peak_reserved_bytes"] >> 20, one["peak_reserved_bytes"] >> 20))
PY
# A thread number out of range, or a thread column the header does not name,
# is refused with the line named.
sed 's/,1$/,64/' "$work/threads.csv" > "$work/bad-thread.csv"
if "$replay" "$work/bad-thread.csv" --quiet 2>"$work/err"; then echo "thread 64 was accepted"; exit 1; fi
grep -q "line 67: thread 64, above the replay's limit of 63" "$work/err"
sed 's/,1$/,x/' "$work/threads.csv" > "$work/bad-thread.csv"
if "$replay" "$work/bad-thread.csv" --quiet 2>"$work/err"; then echo "thread x was accepted"; exit 1; fi
grep -q "line 67: bad number" "$work/err"
printf 'op,id,bytes,device,stream,role,t_ns\na,1,10,0,0,kv,0,1\n' > "$work/bad.csv"
if "$replay" "$work/bad.csv" --quiet 2>"$work/err"; then echo "an 8-field line was accepted"; exit 1; fi
grep -q "line 2: expected 7 fields" "$work/err"
echo "replay_test: all checks passed"
