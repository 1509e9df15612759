#!/usr/bin/env python3
"""bench/probes/paged_kv_turn_model.py: a CPU model of the paged-KV demo's
scheduling (examples/paged_kv: admissions, growth, retirements, turns, the
budget's fit check of turns.cc), to estimate how many tokens a scheduling
policy decodes before spending GPU time on it. It ignores time (fetches are
instant: no request joins late) and the pause mode, and draws its own random
requests, so it compares policies, not the demo's measured token counts.

  python3 bench/probes/paged_kv_turn_model.py

Seventeenth session (before Plan::keep_running was measured): resident
131,072 tokens, peak 2,205 blocks, budget 1,102; whole groups (the
page-faulting run) 65,536; the budget's plan 65,270; keeping requests of the
outgoing group that fit (keep_running) 70,910 (+8.6%).
"""
import random

BT = 256  # tokens per KV block (examples/paged_kv/kv_layout.h)


def blocks_after(length, target, steps):
    end=min(length+steps, target); return (max(end,1)-1)//BT+1
class R:
    def __init__(s, id, group, length, target):
        s.id=id; s.group=group; s.length=length; s.target=target
        s.blocks=blocks_after(length,target,0); s.sits_out=False; s.sat_out=0; s.waiting=False; s.kept=False
# policy: 'resident' (everyone runs every step), 'faulting' (whole groups take
# turns), 'budget' (turns.cc's plan: what fits with its growth, the rest sits
# out; admissions only where they fit), 'keep' (and the outgoing group's
# requests that fit keep running). Returns (tokens, peak blocks, blocks fetched).
def run(policy, steps=4096, n=32, turn=512, groups=2, context=96, budget=None, seed=7):
    rng=random.Random(seed); reqs=[]; nid=0; tokens=0; peak=0; active=0; swaps=0
    def need(q,left): return blocks_after(q.length,q.target,left)
    def runs(q):
        if policy=='resident': return True
        return (q.group==active or q.kept) and not q.sits_out and not q.waiting
    def budget_left(left):
        held=sum(need(q,left) for q in reqs if runs(q))
        return max(budget-held,0)
    for step in range(steps):
        while len(reqs)<n:
            L=16+rng.randrange(300*context); q=R(nid,(nid%groups) if step==0 else active,L,L+64+rng.randrange(400)); nid+=1
            if policy!='resident' and policy!='faulting' and step>0:
                left=turn-step%turn
                if need(q,left)>budget_left(left): q.group=(active+1)%groups; q.waiting=True
            reqs.append(q)
        peak=max(peak,sum(q.blocks for q in reqs))
        if policy!='resident' and step%turn==0:
            t=step//turn; prev_active=active; active=t%groups
            was_running={q.id for q in reqs if (q.group==prev_active or q.kept) and not q.sits_out and not q.waiting} if step>0 else set()
            for q in reqs: q.kept=False
            if policy in ('budget','keep'):
                for q in reqs: q.sits_out=False
                ins=[q for q in reqs if q.group==active]
                ins.sort(key=lambda q:(-q.sat_out, need(q,turn)))
                running=0
                for q in ins:
                    nd=need(q,turn)
                    if running+nd>budget: q.sits_out=True; q.sat_out+=1; continue
                    running+=nd; q.sat_out=0; q.waiting=False
                    if q.id not in was_running: swaps+=q.blocks
                if policy=='keep':
                    cand=[q for q in reqs if q.group!=active and q.id in was_running]
                    cand.sort(key=lambda q: need(q,turn))
                    for q in cand:
                        nd=need(q,turn)
                        if running+nd<=budget: q.kept=True; running+=nd
            else:
                for q in reqs: q.sits_out=False; q.waiting=False
        for q in reqs:
            if runs(q):
                q.length+=1; tokens+=1; q.blocks=blocks_after(q.length,q.target,0)
        reqs=[q for q in reqs if not (q.length>=q.target and runs(q))]
    return tokens, peak, swaps

res_tokens, peak, _ = run('resident')
budget=peak//2
print('resident tokens', res_tokens, 'peak blocks', peak, 'budget', budget)
for p in ('faulting','budget','keep'):
    t,_,sw=run(p,budget=budget); print(p, t, round(t/res_tokens,3), 'blocks fetched', sw)
