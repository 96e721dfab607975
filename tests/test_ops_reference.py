"""Ops against the expected values coremltools' own op tests hard-code (in
coremltools/converters/mil/mil/ops/tests/iOS14, which Apple's CI runs on Core ML): an
anchor independent of every formula written here, fp32 and fp16, numpy and torch."""

from __future__ import annotations

import numpy as np
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

X2 = np.array(
    [
        [
            [[-10.80291205, -6.42076184], [-7.07910997, 9.1913279]],
            [[-3.18181497, 0.9132147], [11.9785544, 7.92449539]],
        ]
    ],
    np.float32,
)
X3 = np.array(
    [
        [
            [
                [[-1, -5, -1], [-3, -3, 8], [2, 6, 2]],
                [[-4, 7, -4], [4, 6, 7], [4, 4, 8]],
                [[5, -3, 5], [0, -5, 8], [1, 7, 2]],
            ]
        ],
        [
            [
                [[7, -3, -5], [5, 4, 7], [-2, -4, -3]],
                [[-4, 3, -1], [6, -4, 4], [3, 6, 2]],
                [[-1, 4, -4], [-2, -1, -2], [3, 2, 8]],
            ]
        ],
    ],
    np.float32,
)
X1 = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]], np.float32)
KERNELS, STRIDES = [1, 2, 3], [2, 1, 3]


def _pools(kind, x, nd):
    """valid with kernel_sizes[:nd], strides[:nd]; same with the last nd (avg excludes
    the padding)."""
    extra = {"exclude_padding_from_average": True} if kind == "avg" else {}
    op = getattr(mb, f"{kind}_pool")
    return lambda v, f: (
        op(x=v["x"], kernel_sizes=KERNELS[:nd], strides=STRIDES[:nd], pad_type="valid"),
        op(x=v["x"], kernel_sizes=KERNELS[-nd:], strides=STRIDES[-nd:], pad_type="same", **extra),
    )


AVG = {
    1: ([1.0, 3.0, 5.0, 7.0], [1.5, 4.0, 6.5]),
    2: (
        [[[[-8.611837]], [[-1.1343001]]]],
        [[[[-3.7778642], [1.056109]], [[4.4086123], [9.951525]]]],
    ),
    3: (
        [
            [[[[-0.8333334], [2.0]], [[1.6666667], [2.1666667]]]],
            [[[[2.5], [1.1666667]], [[-1.0], [1.3333334]]]],
        ],
        [
            [[[[-0.8333334], [2.0], [3.3333335]], [[1.6666667], [2.1666667], [3.3333335]]]],
            [[[[2.5], [1.1666667], [-3.0]], [[-1.0], [1.3333334], [4.3333335]]]],
        ],
    ),
}
MAX = {
    1: ([1.0, 3.0, 5.0, 7.0], [2.0, 5.0, 7.0]),
    2: (
        [[[[-6.42076184]], [[0.9132147]]]],
        [[[[9.191328], [9.191328]], [[11.978555], [11.978555]]]],
    ),
    3: (
        [[[[[8.0], [8.0]], [[8.0], [8.0]]]], [[[[7.0], [7.0]], [[4.0], [8.0]]]]],
        [
            [[[[8.0], [8.0], [6.0]], [[8.0], [8.0], [7.0]]]],
            [[[[7.0], [7.0], [-2.0]], [[4.0], [8.0], [8.0]]]],
        ],
    ),
}
SHAPES = {
    1: ((1, 1, 4), (1, 1, 3)),
    2: ((1, 2, 1, 1), (1, 2, 2, 1)),
    3: ((2, 1, 2, 2, 1), (2, 1, 2, 3, 1)),
}
INPUTS = {1: X1, 2: X2, 3: X3}
SAME_LOWER = {  # input arange(1, n + 1) of shape (1, 1, 2, ...), kernel 2 per dim
    "avg": {
        1: [0.5, 1.5],
        2: [0.25, 0.75, 1, 2.5],
        3: [0.125, 0.375, 0.5, 1.25, 0.75, 1.75, 2, 4.5],
    },
    "max": {1: [1, 2], 2: [1, 2, 3, 4], 3: [1, 2, 3, 4, 5, 6, 7, 8]},
}
S2B = np.array([[[[1, 2, 3, 4], [5, 6, 7, 8]]], [[[9, 10, 11, 12], [13, 14, 15, 16]]]], np.float32)
B2S = np.array(
    [
        [[[0, 1, 3]]],
        [[[0, 9, 11]]],
        [[[0, 2, 4]]],
        [[[0, 10, 12]]],
        [[[0, 5, 7]]],
        [[[0, 13, 15]]],
        [[[0, 6, 8]]],
        [[[0, 14, 16]]],
    ],
    np.float32,
)

XN = np.array([[[1.0, -7.0], [5.0, -6.0], [-3.0, -5.0]]], np.float32)
XI = np.array(
    [
        [[[-16.0, 13.0], [11.0, 16.0]], [[13.0, 15.0], [13.0, 9.0]], [[-9.0, 4.0], [-6.0, 3.0]]],
        [[[-5.0, 1.0], [12.0, 3.0]], [[0.0, 9.0], [2.0, -8.0]], [[2.0, 5.0], [10.0, 0.0]]],
    ],
    np.float32,
)

CASES = [
    Case(
        "local_response_norm_rank3",  # each element of this input is normalized alone
        {"x": XN},
        lambda v, f: (
            mb.local_response_norm(x=v["x"], size=2),
            mb.local_response_norm(x=v["x"], size=3, alpha=f(0.0001), beta=f(0.75), k=f(1.0)),
        ),
        lambda v, f: (
            np.array(
                [[[0.99996257, -6.98716545], [4.99531746, -5.99191284], [-2.99898791, -4.99531746]]]
            ),
            np.array(
                [[[0.99997497, -6.99143696], [4.99687672, -5.99460602], [-2.99932504, -4.99687672]]]
            ),
        ),
        tol=1e-6,
    ),
    Case(
        "l2_norm",
        {"x": XN},
        lambda v, f: mb.l2_norm(x=v["x"], epsilon=f(1e-10)),
        lambda v, f: np.array(
            [[[0.08304548, -0.58131838], [0.41522741, -0.4982729], [-0.24913645, -0.41522741]]]
        ),
        tol=1e-6,
    ),
    Case(
        "instance_norm",
        {"x": XI},
        lambda v, f: mb.instance_norm(x=v["x"], epsilon=f(1e-2)),
        lambda v, f: np.array(
            [
                [
                    [[-1.71524656, 0.54576027], [0.38982874, 0.77965748]],
                    [[0.22917463, 1.14587319], [0.22917463, -1.60422242]],
                    [[-1.2470212, 1.06887531], [-0.71258354, 0.89072943]],
                ],
                [
                    [[-1.27070526, -0.28693344], [1.51664821, 0.04099049]],
                    [[-0.12380638, 1.36187018], [0.20634397, -1.44440776]],
                    [[-0.59714057, 0.19904686], [1.5260259, -1.12793219]],
                ],
            ]
        ),
        tol=1e-6,
    ),
    *[
        Case(
            f"{kind}_pool_{nd}d",
            {"x": INPUTS[nd]},
            _pools(kind, INPUTS[nd], nd),
            lambda v, f, table=table, nd=nd: tuple(
                np.array(e, np.float64).reshape(s)
                for e, s in zip(table[nd], SHAPES[nd], strict=True)
            ),
            tol=1e-6,
        )
        for kind, table in (("avg", AVG), ("max", MAX))
        for nd in (1, 2, 3)
    ],
    *[
        Case(
            f"{kind}_pool_same_lower_{nd}d",
            {"x": np.arange(1, 2**nd + 1, dtype=np.float32).reshape((1, 1) + (2,) * nd)},
            lambda v, f, kind=kind, nd=nd: getattr(mb, f"{kind}_pool")(
                x=v["x"], kernel_sizes=[2] * nd, pad_type="same_lower"
            ),
            lambda v, f, kind=kind, nd=nd: np.array(SAME_LOWER[kind][nd], np.float64).reshape(
                (1, 1) + (2,) * nd
            ),
        )
        for kind in ("avg", "max")
        for nd in (1, 2, 3)
    ],
    Case(
        "depth_to_space",
        {"x": np.array([[[[9.0]], [[5.0]], [[1.0]], [[3.0]]]], np.float32)},
        lambda v, f: mb.depth_to_space(x=v["x"], block_size=2),
        lambda v, f: np.array([[[[9.0, 5.0], [1.0, 3.0]]]]),
    ),
    Case(
        "space_to_depth",
        {"x": np.array([[[[7.0, 9.0], [4.0, 6.0]]]], np.float32)},
        lambda v, f: mb.space_to_depth(x=v["x"], block_size=2),
        lambda v, f: np.array([[[[7.0]], [[9.0]], [[4.0]], [[6.0]]]]),
    ),
    Case(
        "space_to_batch",
        {"x": S2B},
        lambda v, f: mb.space_to_batch(x=v["x"], block_shape=[2, 2], paddings=[[0, 0], [2, 0]]),
        lambda v, f: B2S.astype(np.float64),
    ),
    Case(
        "batch_to_space",
        {"x": B2S},
        lambda v, f: mb.batch_to_space(x=v["x"], block_shape=[2, 2], crops=[[0, 0], [2, 0]]),
        lambda v, f: S2B.astype(np.float64),
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_reference")
