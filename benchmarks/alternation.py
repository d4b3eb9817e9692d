"""The order in which a benchmark's variants run, round by round.

Rotating one fixed order (round r starting at variant r) moves each variant to a new position
but keeps its predecessor: in compare_pytorch's 2-core row, ddp-trainer's 2-rank run followed
PyTorch's DDP run in every round but the first, so whatever one run leaves behind (memory being
freed, a slower hour's start) would land on the same neighbour each time. Rows of a Williams
design change the predecessor too: over n rounds of n variants (2n when n is odd) every variant
runs right after every other exactly once, and at every position once."""


def round_orders(n, reps):
    """`reps` orders of range(n), one per round."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:  # 0, 1, n-1, 2, n-2, ...: every difference of neighbours occurs once
        if len(first) % 2:
            first.append(low)
            low += 1
        else:
            first.append(high)
            high -= 1
    rows = [[(v + r) % n for v in first] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return [rows[r % len(rows)] for r in range(reps)]
