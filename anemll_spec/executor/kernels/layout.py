"""Rearrangements between channels, space and batch: pixel_shuffle, pixel_unshuffle,
depth_to_space, space_to_depth, space_to_batch, batch_to_space.

Each is a reshape, a transpose and a reshape (plus a pad or crop for the batch ops):
pixel_(un)shuffle as PyTorch's PixelShuffle (channel-major: c * f * f + i * f + j),
depth_to_space / space_to_depth and the batch ops as TensorFlow's (block-major:
(i * b + j) * C + c, batch (i * b1 + j) * n + b), the frontends they are converted from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from anemll_spec.executor.kernels.base import Prep, Run, kernel


def _rank4(p: Prep) -> None:
    p.check(p.rank("x") == 4, f"x must have rank 4 (n, C, H, W), got rank {p.rank('x')}")


def _factor(p: Prep, name: str) -> int:
    f = p.int(name)
    p.check(f >= 1, f"{name} {f} must be >= 1")
    return f


def _divides(p: Prep, size: int, by: int, what: str) -> None:
    if size % by:
        raise p.fail(f"{what} {size} is not divisible by {by}")


Rules = Callable[[Sequence[int]], list[tuple[int, int, str]]]


def _divisible(p: Prep, rules: Rules) -> Callable[[Sequence[int]], None]:
    """A check of x's (n, C, H, W) against `rules` (each (size, divisor, what)): made
    now on x's declared shape when it is known (the op then fails at load, not at run;
    the runtime shape is that shape, as every input and op output is checked against its
    declaration, so the returned check has nothing left to do), else returned for the
    runtime shape."""

    def check(dims: Sequence[int]) -> None:
        for size, by, what in rules(dims):
            _divides(p, size, by, what)

    dims = p.dims("x")
    if dims is None:
        return check
    check(dims)
    return _checked


def _checked(dims: Sequence[int]) -> None:
    """The run-time check of a shape already checked at load."""


@kernel("pixel_shuffle", "depth_to_space")
def _to_space(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    _rank4(p)
    torch_order = p.op.type == "pixel_shuffle"
    f = _factor(p, "upscale_factor" if torch_order else "block_size")
    check = _divisible(p, lambda d: [(d[1], f * f, "channels")])

    def to_space(env):
        v = env[x]
        check(xp.shape(v))
        n, c, h, w = xp.shape(v)
        co = c // (f * f)
        if torch_order:  # channel c * f * f + i * f + j -> (c, h * f + i, w * f + j)
            v = xp.permute_dims(xp.reshape(v, [n, co, f, f, h, w]), [0, 1, 4, 2, 5, 3])
        else:  # channel (i * f + j) * co + c
            v = xp.permute_dims(xp.reshape(v, [n, f, f, co, h, w]), [0, 3, 4, 1, 5, 2])
        return xp.reshape(v, [n, co, h * f, w * f])

    return to_space


@kernel("pixel_unshuffle", "space_to_depth")
def _to_depth(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    _rank4(p)
    torch_order = p.op.type == "pixel_unshuffle"
    f = _factor(p, "downscale_factor" if torch_order else "block_size")
    check = _divisible(p, lambda d: [(d[2], f, "height"), (d[3], f, "width")])

    def to_depth(env):
        v = env[x]
        check(xp.shape(v))
        n, c, h, w = xp.shape(v)
        v = xp.reshape(v, [n, c, h // f, f, w // f, f])
        perm = [0, 1, 3, 5, 2, 4] if torch_order else [0, 3, 5, 1, 2, 4]
        return xp.reshape(xp.permute_dims(v, perm), [n, c * f * f, h // f, w // f])

    return to_depth


def _blocks(p: Prep, other: str) -> tuple[list[int], list[list[int]]]:
    _rank4(p)
    block = p.ints("block_shape")
    amounts = p.ints(other)
    p.check(len(block) == 2 and len(amounts) == 4, f"block_shape [2] and {other} [2, 2] needed")
    p.check(min(block) >= 1 and min(amounts) >= 0, f"block_shape {block}, {other} {amounts}")
    return block, [amounts[0:2], amounts[2:4]]


@kernel("space_to_batch")
def _space_to_batch(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    (b0, b1), pads = _blocks(p, "paddings")
    check = _divisible(
        p,
        lambda d: [
            (d[2] + sum(pads[0]), b0, "padded height"),
            (d[3] + sum(pads[1]), b1, "padded width"),
        ],
    )

    def space_to_batch(env):
        check(xp.shape(env[x]))
        v = xp.pad(env[x], [(0, 0), (0, 0), tuple(pads[0]), tuple(pads[1])], "constant", 0.0)
        n, c, h, w = xp.shape(v)
        v = xp.reshape(v, [n, c, h // b0, b0, w // b1, b1])
        v = xp.permute_dims(v, [3, 5, 0, 1, 2, 4])  # (b0, b1, n, C, H/b0, W/b1)
        return xp.reshape(v, [b0 * b1 * n, c, h // b0, w // b1])

    return space_to_batch


@kernel("batch_to_space")
def _batch_to_space(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    (b0, b1), crops = _blocks(p, "crops")
    check = _divisible(p, lambda d: [(d[0], b0 * b1, "batch")])

    def batch_to_space(env):
        v = env[x]
        check(xp.shape(v))
        nb, c, h, w = xp.shape(v)
        n = nb // (b0 * b1)
        v = xp.permute_dims(xp.reshape(v, [b0, b1, n, c, h, w]), [2, 3, 4, 0, 5, 1])
        v = xp.reshape(v, [n, c, h * b0, w * b1])
        (t, b), (left, r) = crops
        if t + b >= h * b0 or left + r >= w * b1:
            raise p.fail(f"crops {crops} leave nothing of {(h * b0, w * b1)}")
        return xp.getitem(
            v, (slice(None), slice(None), slice(t, h * b0 - b), slice(left, w * b1 - r))
        )

    return batch_to_space
