"""Paired timing of two PyTorch allocators: one long-lived worker process each,
driven in alternation.

PyTorch picks its allocator once per process, so native and umpool run in two
processes. Timing them in separate rounds of fresh processes (minutes apart)
lets a shared host's load decide the result: on the lent H200 the same
training step took 23-39 ms from round to round. Here both workers start once,
load their models and warm up, and then time one short chunk each in turn
(the order alternating every round), so that the two figures of a round are
taken a fraction of a second apart under the same load. Each round gives one
paired ratio per task; the report is the median of those ratios with their
quartiles and a bootstrap 95% interval, and the ratio of each side's fastest
tenth (other tenants of a shared host only ever add time).

Protocol: the worker prints one line "@@{json}" when ready, then reads a task
name per line from stdin and answers with one "@@{json}" line; "quit" ends it.
Anything else a worker prints (library warnings) goes to its log.
"""
import json
import os
import random
import statistics
import subprocess
import sys

PREFIX = "@@"


def reply(obj):
    """Worker side: one answer line."""
    print(PREFIX + json.dumps(obj), flush=True)


def serve(tasks, ready):
    """Worker side: answers `ready`, then runs tasks[name]() per request."""
    reply(ready)
    for line in sys.stdin:
        name = line.strip()
        if name == "quit":
            return
        reply(tasks[name]())


class Worker:
    def __init__(self, argv, log_path, env=None):
        self.log = open(log_path, "w")
        self.p = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.log_path = log_path

    def read(self):
        for line in self.p.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])
            self.log.write(line)
        self.log.flush()
        with open(self.log_path) as f:
            tail = f.read()[-4000:]
        raise SystemExit(f"worker {self.p.args} died (exit {self.p.wait()}):\n{tail}")

    def ask(self, name):
        self.p.stdin.write(name + "\n")
        self.p.stdin.flush()
        return self.read()

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=60)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.p.kill()
        self.log.close()


def emit(lines, path=None):
    """Prints a report's lines and, with `path`, writes them there too."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if path:
        with open(path, "w") as f:
            f.write(text)


def quartiles(xs):
    if len(xs) < 2:
        return [xs[0], xs[0]] if xs else [None, None]
    q = statistics.quantiles(xs, n=4)
    return [q[0], q[2]]


def percentile(xs, p):
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(len(ys) * p / 100))]


def bootstrap_ci(xs, n=2000, seed=0):
    """95% interval of the median of xs by resampling (seeded: reproducible)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return [meds[int(0.025 * n)], meds[int(0.975 * n) - 1]]


def run(workers, tasks, rounds, figure, on_round=None):
    """Times `tasks` on every worker (a dict name -> Worker, two of them) for
    `rounds` alternating rounds. figure(task, answer) -> the number compared.
    Returns {task: {"answers": {worker: [...]}, "ratio_median", "ratio_quartiles",
    "median": {worker: ...}}}; the ratio is second worker / first worker."""
    names = list(workers)
    out = {t: {"answers": {n: [] for n in names}} for t in tasks}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for t in tasks:
            for n in order:
                out[t]["answers"][n].append(workers[n].ask(t))
        if on_round:
            on_round(r, out)
    a, b = names
    for t in tasks:
        fa = [figure(t, x) for x in out[t]["answers"][a]]
        fb = [figure(t, x) for x in out[t]["answers"][b]]
        ratios = [y / x for x, y in zip(fa, fb)]
        out[t]["ratios"] = ratios
        out[t]["ratio_median"] = statistics.median(ratios)
        out[t]["ratio_quartiles"] = quartiles(ratios)
        out[t]["ratio_median_ci95"] = bootstrap_ci(ratios)
        out[t]["median"] = {a: statistics.median(fa), b: statistics.median(fb)}
        # Other tenants of a shared host only add time: the fastest tenth of
        # each side's chunks estimates its own cost.
        out[t]["ratio_p10"] = percentile(fb, 10) / percentile(fa, 10)
    return out


def start(script, uses, extra_args, tmp, env_for=None):
    """One worker per allocator in `uses`, each run as `script --worker serve
    --use U *extra_args`, with the environment env_for[U] (absent: this
    process's); waits until all are ready. Returns (workers, ready answers)."""
    workers, ready = {}, {}
    for u in uses:
        workers[u] = Worker([script, "--worker", "serve", "--use", u, *extra_args],
                            os.path.join(tmp, f"duel_{u}.log"), env=(env_for or {}).get(u))
    for u in uses:
        ready[u] = workers[u].read()
    return workers, ready
