#!/usr/bin/env python3
"""summarize.py: writes summary.txt beside it from the files the scripts wrote: umpool_wait's
reserved / allocated on the offload program (wait/*.md here, and the fortieth session's
wait/*.md), per build, and the MEAN / offload lines of host/nowait_*.txt."""
import glob, os, re
here = os.path.dirname(os.path.abspath(__file__))
s40 = os.path.join(here, "..", "H200-2026-12-04-session40", "wait")
names = {"new": "in-place fences (this session, not kept)", "fix": "a94cf6e (the fence fix)",
         "base": "521ebc9 (before the fix)"}
names40 = {"new": "a94cf6e (the fence fix)", "base": "521ebc9 (before the fix)"}
out = ["umpool_wait (reuse_pending_blocks:0) on bench/torch/multistream.py, reserved / allocated:"]
for label, folder, nm in (("session 41", os.path.join(here, "wait"), names), ("session 40", s40, names40)):
    by = {}
    for f in sorted(glob.glob(os.path.join(folder, "*_r*.md"))):
        build = os.path.basename(f).split("_r")[0]
        for line in open(f):
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 4 and cells[1] == "umpool_wait":
                by.setdefault(nm[build], []).append(cells[4])
    for build, ratios in by.items():
        out.append(f"  {label}: {build}: {' / '.join(ratios)}")
out.append("host replays, reuse_pending_blocks:0 (host/nowait.sh):")
for f in sorted(glob.glob(os.path.join(here, "host", "nowait_*.txt"))):
    out.append("  " + os.path.basename(f) + ":")
    head = None
    for line in open(f):
        if re.match(r"^(one|roles) lag", line):
            head = line.strip()
        elif line.startswith("MEAN"):
            out.append(f"    {head}: {line.strip()}")
        elif line.startswith("offload"):
            out.append("    " + " ".join(line.split()))
open(os.path.join(here, "summary.txt"), "w").write("\n".join(out) + "\n")
print("\n".join(out))
