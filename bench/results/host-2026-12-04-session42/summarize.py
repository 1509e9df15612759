#!/usr/bin/env python3
"""summarize.py: writes summary.txt from small_slabs.txt, first_slab_apart.txt and repeat4.txt
(the outputs of variants.sh): per binary, each recorded program's reserved/live,
then each set's mean, worst and calls after warm-up."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(path, default_set):
    """{binary: {set: {'rows': {trace: (ratio, calls)}, 'mean': (mean, worst, calls)}}}"""
    out, binary, cur = {}, None, default_set
    for line in open(os.path.join(HERE, path)):
        line = line.rstrip('\n')
        if line.startswith('== '):
            binary, cur = line[3:], default_set
            out[binary] = {}
        elif line in ('recorded', 'one role', 'roles, lag 0', 'roles, lag 100'):
            cur = line
        elif line.startswith('MEAN'):
            m = re.match(r'MEAN (\S+) worst (\S+) calls (\d+)', line)
            out[binary].setdefault(cur, {'rows': {}})['mean'] = m.groups()
        elif binary and line.split() and re.match(r'^\S+\s+1\.\d+', line):
            f = line.split()
            out[binary].setdefault(cur, {'rows': {}})['rows'][f[0]] = (f[1], f[2])
    return out


def main():
    runs = {}
    for path in ('small_slabs.txt', 'first_slab_apart.txt'):
        runs.update(parse(path, 'recorded'))
    rep = parse('repeat4.txt', 'recorded x4')
    lines = []
    progs = ['beam', 'compile', 'generate', 'offload', 'train', 'vit']
    for title, sets_by_binary, key in (
            ('recorded programs, one run: reserved/live (calls after warm-up)', runs, 'recorded'),
            ('recorded programs run four times in one pool (--repeat 4)', rep, 'recorded x4')):
        lines.append(title)
        lines.append('| binary | ' + ' | '.join(progs) + ' | mean | calls |')
        for b, sets in sets_by_binary.items():
            r = sets[key]
            cells = [f'{r["rows"][p][0]} ({r["rows"][p][1]})' for p in progs]
            lines.append(f'| {b} | ' + ' | '.join(cells) + f' | {r["mean"][0]} | {r["mean"][2]} |')
        lines.append('')
    lines.append('steady generated traces (22 each): mean / worst / calls after warm-up')
    lines.append('| binary | one role | roles, lag 0 | roles, lag 100 |')
    for b, sets in runs.items():
        cells = ['/'.join(sets[s]['mean']) for s in ('one role', 'roles, lag 0', 'roles, lag 100')]
        lines.append(f'| {b} | ' + ' | '.join(cells) + ' |')
    with open(os.path.join(HERE, 'summary.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
