#!/usr/bin/env python3
"""periodic.py IN OUT FIRST PERIOD REPEATS: a steady trace from a recorded training
trace (thread column as label_threads.py writes it). Steps start at every third
4-byte allocation from the first (the loss of each step). The ops before step
FIRST are kept as they are; steps FIRST .. FIRST+PERIOD-1 (one period of the
program's batch shapes) are then played REPEATS times, each repetition's ids
renamed, its frees of blocks from before the period matched to the previous
repetition's blocks still live at its end (same size, in order). The warm-up mark
goes after the second repetition: calls after warm-up are what a training loop
that repeats its shapes costs once its pool has settled."""
import collections
import sys

src, dst, first, period, repeats = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
lines = open(src).read().splitlines()
head = [l for l in lines if l.startswith("#") or l.startswith("op,")]
ops = [l.split(",") for l in lines if l and l[0] in "afr"]
fours = [i for i, f in enumerate(ops) if f[0] == "a" and int(f[2]) == 4]
starts = fours[0::3]
a, b = starts[first], starts[first + period]
unit = ops[a:b]
made = {f[1]: f[2] for f in unit if f[0] == "a"}
freed = {f[1] for f in unit if f[0] == "f"}
carried_out = [i for i in made if i not in freed]          # live at the unit's end, in order
carried_in = [f[1] for f in unit if f[0] == "f" and f[1] not in made]  # from before it
size_in = {f[1]: f[2] for f in ops[:a] if f[0] == "a"}
assert sorted(size_in[i] for i in carried_in) == sorted(made[i] for i in carried_out), \
    "the period's carried-in and carried-out blocks differ: pick another FIRST or PERIOD"
span = max(int(f[1]) for f in ops) + 1
out = head[:]
out += [",".join(f) for f in ops[:a]]
prev = {i: i for i in carried_in}  # repetition 0 frees the prefix's own blocks
for r in range(repeats):
    ren = {i: str(int(i) + (r + 1) * span) for i in made}
    for f in unit:
        g = f[:]
        g[1] = ren[f[1]] if f[1] in made else prev[f[1]]
        out.append(",".join(g))
    # the next repetition's carried-in frees name this one's carried-out blocks (by size, in order)
    pool = collections.defaultdict(collections.deque)
    for i in carried_out:
        pool[made[i]].append(ren[i])
    prev = {i: pool[size_in[i]].popleft() for i in carried_in}
    if r == 1:
        out.append(f"m,0,0,0,0,warmup_end,{unit[-1][6]},0")
open(dst, "w").write("\n".join(out) + "\n")
print(f"{len(ops[:a])} ops, then {repeats} x {len(unit)} ({period} steps from step {first})", file=sys.stderr)
print(len(ops[:a]), len(unit))
