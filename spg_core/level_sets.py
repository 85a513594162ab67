"""Topology of the threshold sets ``{quantized > t}`` of one uint8 map, for every t at once.

What :mod:`spg_core.tau_sweep` needs to know about the sets before it runs any
``cv2.findContours``: the only thresholds at which a component can vanish
(:func:`vanishing_levels`), the thresholds at which some set has a hole
(:func:`hole_thresholds`), the Euler number of every set (:func:`euler_numbers`), and the
contour area of a hole-free component from 2×2 window counts (:func:`window_stats`,
:func:`area2_from_windows`). Components are 8-connected, background regions 4-connected,
as in OpenCV's contour following.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["vanishing_levels", "hole_thresholds", "euler_numbers", "window_stats", "area2_from_windows"]


def vanishing_levels(normalized: np.ndarray, quantized: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds at which a component can vanish, and the "pits" every hole must contain.

    Order pixels by (float value, pixel index). Because ``quantized = uint8(255·value)`` is
    monotone in the value, this order refines the uint8 levels, so every component of
    ``quantized > t`` has a unique top pixel: a strict 8-neighbourhood maximum of the order,
    with level > t. A component vanishes going from t-1 to t only if its top pixel has level t,
    so the levels of those maxima are the only thresholds where the count of components can
    drop. Dually, a hole (a 4-connected background region away from the border) contains a
    strict 4-neighbourhood minimum of the order (float value, distance to the image border,
    pixel index), whose level is <= t: a "pit" (flat indices returned). With the border
    distance as tie-break, flat regions hold no such minimum: only real pits in the map count.
    """
    height, width = quantized.shape
    flat = normalized.ravel()
    offsets8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]

    # Maxima: first the pixels not below any neighbour (a separable 3×3 max of the float map),
    # then the exact (value, index) comparison on those few.
    # float32 keeps every candidate (rounding is monotone, so >= survives) at half the traffic.
    coarse = normalized.astype(np.float32)
    padded = np.full((height + 2, width + 2), -np.inf, dtype=np.float32)
    padded[1:-1, 1:-1] = coarse
    rows = np.maximum(np.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    block_max = np.maximum(np.maximum(rows[:-2], rows[1:-1]), rows[2:])
    candidates = np.flatnonzero((coarse >= block_max) & (quantized > 0))
    y, x = np.divmod(candidates, width)
    value = flat[candidates]
    strict = np.ones(len(candidates), dtype=bool)
    for dy, dx in offsets8:
        ny, nx = y + dy, x + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        other = np.where(inside, ny * width + nx, 0)
        other_value = flat[other]
        higher = (other_value > value) | ((other_value == value) & (other > candidates))
        strict &= ~(inside & higher)
    breaks = np.unique(quantized.ravel()[candidates[strict]])

    pits = np.zeros(0, dtype=np.int64)
    if height > 2 and width > 2:
        inner = coarse[1:-1, 1:-1]
        lowest = np.minimum(np.minimum(coarse[:-2, 1:-1], coarse[2:, 1:-1]),
                            np.minimum(coarse[1:-1, :-2], coarse[1:-1, 2:]))
        borderward, distance = _borderward(height, width)
        # A minimum of the order must be strictly below its border-ward neighbour (equal value
        # would lose the tie on distance) and not above any neighbour; in float32 both become
        # "<=", a superset that the exact float64 test below trims.
        positions = np.flatnonzero(((inner <= lowest) & (inner <= coarse.ravel()[borderward])).ravel())
        if len(positions):
            cy, cx = np.divmod(positions, width - 2)
            cy, cx = cy + 1, cx + 1
            own = cy * width + cx
            strict = np.ones(len(own), dtype=bool)
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                other = (cy + dy) * width + (cx + dx)
                lower = ((flat[other] < flat[own])
                         | ((flat[other] == flat[own])
                            & ((distance[other] < distance[own])
                               | ((distance[other] == distance[own]) & (other < own)))))
                strict &= ~lower
            pits = own[strict]
    return breaks, pits


def hole_thresholds(quantized: np.ndarray, pits: np.ndarray) -> np.ndarray:
    """(256,) bool: the thresholds t at which ``quantized > t`` has at least one hole.

    A hole at t contains a pit q (level <= t) whose 4-connected background region at t does
    not reach the image border. That region only grows with t, so each pit holes the image
    exactly on [level(q), escape(q)), where escape(q) is the first t at which the region
    reaches the border: found by bisection, each step one ``cv2.floodFill`` from q.
    """
    height, width = quantized.shape
    max_value = int(quantized.max())
    holes = np.zeros(256, dtype=bool)

    def escapes(position: int, t: int) -> bool:
        background = (quantized <= t).view(np.uint8).copy()
        y, x = divmod(int(position), width)
        _, _, _, (rx, ry, rw, rh) = cv2.floodFill(background, None, (x, y), 2, flags=4)
        return rx == 0 or ry == 0 or rx + rw == width or ry + rh == height

    for position in pits:
        level = int(quantized.ravel()[position])
        if level >= max_value or escapes(position, level):
            continue
        low, high = level, max_value  # everything is background at max_value: escaped there
        while high - low > 1:  # invariant: not escaped at low, escaped at high
            middle = (low + high) // 2
            if escapes(position, middle):
                high = middle
            else:
                low = middle
        holes[level:high] = True
    return holes


_BORDERWARD_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _borderward(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For the inner pixels, the flat index of the 4-neighbour one step nearer the image
    border ((H-2)×(W-2)), and every pixel's distance to the border (flat)."""
    cached = _BORDERWARD_CACHE.get((height, width))
    if cached is None:
        y, x = np.mgrid[0:height, 0:width]
        steps = np.stack([y, height - 1 - y, x, width - 1 - x])  # up, down, left, right
        distance = steps.min(axis=0).ravel()
        direction = steps[:, 1:-1, 1:-1].argmin(axis=0)
        move_y = np.array([-1, 1, 0, 0])[direction]
        move_x = np.array([0, 0, -1, 1])[direction]
        borderward = (y[1:-1, 1:-1] + move_y) * width + (x[1:-1, 1:-1] + move_x)
        cached = (borderward, distance)
        if len(_BORDERWARD_CACHE) < 16:
            _BORDERWARD_CACHE[(height, width)] = cached
    return cached


def euler_numbers(quantized: np.ndarray) -> np.ndarray:
    """Euler number (8-connected components minus 4-connected holes) of ``quantized > t`` for
    every t in 0..255, from 2×2 window counts (Gray's bit-quads: E8 = (Q1 - Q3 - 2·QD) / 4).

    A window whose values sort to s1 <= s2 <= s3 <= s4 holds 3 foreground pixels for t in
    [s1, s2) and 1 for t in [s3, s4); its two largest are a diagonal pair (QD) on
    [max(b, c), min(a, d)) or [max(a, d), min(b, c)) when that interval is not empty. Windows
    hanging over the image edge see background outside, handled apart from the interior.
    """
    q = quantized
    height, width = q.shape
    diff = np.zeros(257, dtype=np.int64)  # diff[v]: change of 4·E8 at threshold v

    def add(values: np.ndarray, weight: int) -> None:
        diff[:] += weight * np.bincount(values.ravel(), minlength=257)[:257]

    if height > 1 and width > 1:
        a, b, c, d = q[:-1, :-1], q[:-1, 1:], q[1:, :-1], q[1:, 1:]
        lo_ab, hi_ab = np.minimum(a, b), np.maximum(a, b)
        lo_cd, hi_cd = np.minimum(c, d), np.maximum(c, d)
        mid_low, mid_high = np.maximum(lo_ab, lo_cd), np.minimum(hi_ab, hi_cd)
        add(np.minimum(lo_ab, lo_cd), -1)  # Q3 starts at s1
        add(np.minimum(mid_low, mid_high), +1)  # ... ends at s2
        add(np.maximum(mid_low, mid_high), +1)  # Q1 starts at s3
        add(np.maximum(hi_ab, hi_cd), -1)  # ... ends at s4
        for low, high in ((np.maximum(b, c), np.minimum(a, d)), (np.maximum(a, d), np.minimum(b, c))):
            keep = high > low
            add(low[keep], -2)
            add(high[keep], +2)
    # Edge windows hold two adjacent real pixels (Q1 on [min, max)); corner windows one (Q1 on [0, v)).
    for line in (q[0], q[-1], q[:, 0], q[:, -1]):
        if len(line) > 1:
            add(np.minimum(line[:-1], line[1:]), +1)
            add(np.maximum(line[:-1], line[1:]), -1)
    corners = np.array([q[0, 0], q[0, -1], q[-1, 0], q[-1, -1]])
    diff[0] += 4
    add(corners, -1)
    return np.cumsum(diff[:256]) // 4


def window_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and second smallest value of every 2×2 window ((H-1)×(W-1) each)."""
    a, b, c, d = values[:-1, :-1], values[:-1, 1:], values[1:, :-1], values[1:, 1:]
    lo_ab, hi_ab = np.minimum(a, b), np.maximum(a, b)
    lo_cd, hi_cd = np.minimum(c, d), np.maximum(c, d)
    return np.minimum(lo_ab, lo_cd), np.minimum(np.maximum(lo_ab, lo_cd), np.minimum(hi_ab, hi_cd))


def area2_from_windows(smallest: np.ndarray, second: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """2×contourArea of ``{values > t}`` for each threshold, from the window statistics of the
    windows lying wholly inside one component's box (or masked crop).

    Valid when that set is one 8-connected component without holes: its outer contour then
    passes through the centres of its border pixels and encloses exactly the 2×2 windows whose
    four pixels are in (area 1) plus half of those with three (area 1/2), so 2×area =
    #{windows with smallest value > t} + #{windows with second smallest value > t}. Windows
    that cross the box's edge hold at most two of its pixels and never count.
    """
    histogram = np.bincount(smallest.ravel(), minlength=256) + np.bincount(second.ravel(), minlength=256)
    at_least = np.cumsum(histogram[::-1])[::-1]  # at_least[v] = #values >= v
    return np.append(at_least, 0)[np.asarray(thresholds) + 1]  # values > t  <=>  values >= t + 1
