#!/usr/bin/env python3
"""benchmarks/alternation.py: over a full cycle of rounds, every variant runs right after every
other exactly once and at every position once; each round runs every variant once."""

import os
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "benchmarks"))
from alternation import round_orders  # noqa: E402


def check(n):
    cycle = n if n % 2 == 0 else 2 * n
    orders = round_orders(n, cycle)
    assert all(sorted(order) == list(range(n)) for order in orders), (n, orders)
    pairs = Counter((a, b) for order in orders for a, b in zip(order, order[1:]))
    # n even: each ordered pair once in n rounds; n odd: twice in 2n.
    expected = {(a, b): 1 if n % 2 == 0 else 2 for a in range(n) for b in range(n) if a != b}
    assert pairs == Counter(expected), (n, pairs)
    positions = Counter((i, v) for order in orders for i, v in enumerate(order))
    assert set(positions.values()) == {cycle // n}, (n, positions)
    if n % 2 == 0:  # fewer rounds (compare_pytorch: 5 over 8 variants): a new predecessor each
        short = round_orders(n, min(5, n))
        for v in range(n):
            before = [order[order.index(v) - 1] for order in short if order.index(v) > 0]
            assert len(before) == len(set(before)), (n, v, short)


for n in range(2, 12):
    check(n)
print("round orders: every predecessor once per cycle, n = 2..11")
