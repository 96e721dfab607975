"""The ops of coremltools 9's MIL opsets iOS15, iOS16, iOS17 and iOS18, as data.

`OPSETS[op]` lists the opsets whose definition of `op` is new (the first is where the op
appears; later ones changed it: inputs, defaults or dtypes). Generated from coremltools'
op registry by `generate()` (which imports coremltools; nothing else here does), and kept
in step with it by tests/test_ops_table.py, so `anemll-spec ops` needs no coremltools.
"""

from __future__ import annotations

# ops saved programs hold that the registry does not define: coremltools saves the coreml
# dialect's coreml_update_state as write_state + read_state
SAVED_ONLY = {"write_state": "coreml_update_state as saved (write_state, then read_state)"}

OPSETS: dict[str, tuple[str, ...]] = {
    "_const_symbolic": ("iOS15",),
    "abs": ("iOS15",),
    "acos": ("iOS15",),
    "add": ("iOS15",),
    "affine": ("iOS15",),
    "argsort": ("iOS15",),
    "asin": ("iOS15",),
    "atan": ("iOS15",),
    "atanh": ("iOS15",),
    "avg_pool": ("iOS15",),
    "band_part": ("iOS15",),
    "batch_norm": ("iOS15", "iOS17"),
    "batch_to_space": ("iOS15",),
    "cast": ("iOS15", "iOS17"),
    "ceil": ("iOS15",),
    "clamped_relu": ("iOS15", "iOS17"),
    "classify": ("iOS15",),
    "clip": ("iOS15", "iOS17"),
    "concat": ("iOS15",),
    "cond": ("iOS15",),
    "const": ("iOS15",),
    "constexpr_affine_dequantize": ("iOS16",),
    "constexpr_blockwise_shift_scale": ("iOS18",),
    "constexpr_cast": ("iOS16", "iOS18"),
    "constexpr_lut_to_dense": ("iOS16", "iOS18"),
    "constexpr_lut_to_sparse": ("iOS18",),
    "constexpr_sparse_blockwise_shift_scale": ("iOS18",),
    "constexpr_sparse_to_dense": ("iOS16", "iOS18"),
    "conv": ("iOS15", "iOS17"),
    "conv_quantized": ("iOS15",),
    "conv_transpose": ("iOS15", "iOS17"),
    "coreml_update_state": ("iOS18",),
    "cos": ("iOS15",),
    "cosh": ("iOS15",),
    "crop": ("iOS15",),
    "crop_resize": ("iOS15", "iOS16", "iOS17"),
    "cumsum": ("iOS15",),
    "depth_to_space": ("iOS15",),
    "dequantize": ("iOS17",),
    "einsum": ("iOS15",),
    "elu": ("iOS15", "iOS17"),
    "equal": ("iOS15",),
    "erf": ("iOS15",),
    "exp": ("iOS15",),
    "exp2": ("iOS15",),
    "expand_dims": ("iOS15", "iOS17"),
    "fill": ("iOS15",),
    "fill_like": ("iOS16",),
    "flatten2d": ("iOS15",),
    "floor": ("iOS15",),
    "floor_div": ("iOS15",),
    "gather": ("iOS15", "iOS16", "iOS17"),
    "gather_along_axis": ("iOS15", "iOS16", "iOS17"),
    "gather_nd": ("iOS15", "iOS16", "iOS17"),
    "gelu": ("iOS15",),
    "greater": ("iOS15",),
    "greater_equal": ("iOS15",),
    "gru": ("iOS15", "iOS17", "iOS18"),
    "identity": ("iOS15",),
    "instance_norm": ("iOS15", "iOS17"),
    "inverse": ("iOS15", "iOS17"),
    "l2_norm": ("iOS15", "iOS17"),
    "l2_pool": ("iOS15",),
    "layer_norm": ("iOS15", "iOS17"),
    "leaky_relu": ("iOS15", "iOS17"),
    "less": ("iOS15",),
    "less_equal": ("iOS15",),
    "linear": ("iOS15", "iOS17"),
    "linear_activation": ("iOS15", "iOS17"),
    "list_gather": ("iOS15",),
    "list_length": ("iOS15",),
    "list_read": ("iOS15",),
    "list_scatter": ("iOS15",),
    "list_write": ("iOS15",),
    "local_response_norm": ("iOS15", "iOS17"),
    "log": ("iOS15", "iOS17"),
    "logical_and": ("iOS15",),
    "logical_not": ("iOS15",),
    "logical_or": ("iOS15",),
    "logical_xor": ("iOS15",),
    "lstm": ("iOS15", "iOS17"),
    "make_list": ("iOS15",),
    "matmul": ("iOS15", "iOS17"),
    "max_pool": ("iOS15",),
    "maximum": ("iOS15",),
    "minimum": ("iOS15",),
    "mod": ("iOS15",),
    "mul": ("iOS15",),
    "non_maximum_suppression": ("iOS15", "iOS17"),
    "non_zero": ("iOS15",),
    "not_equal": ("iOS15",),
    "one_hot": ("iOS15",),
    "pad": ("iOS15",),
    "pixel_shuffle": ("iOS15",),
    "pixel_unshuffle": ("iOS16",),
    "pow": ("iOS15",),
    "prelu": ("iOS15", "iOS17"),
    "quantize": ("iOS17",),
    "random_bernoulli": ("iOS15",),
    "random_categorical": ("iOS15",),
    "random_normal": ("iOS15",),
    "random_uniform": ("iOS15",),
    "range_1d": ("iOS15",),
    "read_state": ("iOS18",),
    "real_div": ("iOS15",),
    "reduce_argmax": ("iOS15", "iOS17"),
    "reduce_argmin": ("iOS15", "iOS17"),
    "reduce_l1_norm": ("iOS15",),
    "reduce_l2_norm": ("iOS15",),
    "reduce_log_sum": ("iOS15",),
    "reduce_log_sum_exp": ("iOS15",),
    "reduce_max": ("iOS15",),
    "reduce_mean": ("iOS15",),
    "reduce_min": ("iOS15",),
    "reduce_prod": ("iOS15",),
    "reduce_sum": ("iOS15",),
    "reduce_sum_square": ("iOS15",),
    "relu": ("iOS15",),
    "relu6": ("iOS15",),
    "resample": ("iOS15", "iOS16", "iOS17"),
    "reshape": ("iOS15", "iOS17"),
    "reshape_like": ("iOS16", "iOS17"),
    "resize": ("iOS17",),
    "resize_bilinear": ("iOS15",),
    "resize_nearest_neighbor": ("iOS15",),
    "reverse": ("iOS15", "iOS17"),
    "reverse_sequence": ("iOS15", "iOS17"),
    "rnn": ("iOS15", "iOS17"),
    "round": ("iOS15",),
    "rsqrt": ("iOS15", "iOS17"),
    "scaled_dot_product_attention": ("iOS18",),
    "scaled_tanh": ("iOS15", "iOS17"),
    "scatter": ("iOS15", "iOS17"),
    "scatter_along_axis": ("iOS15", "iOS17"),
    "scatter_nd": ("iOS15", "iOS17"),
    "select": ("iOS15",),
    "shape": ("iOS15",),
    "sigmoid": ("iOS15",),
    "sigmoid_hard": ("iOS15", "iOS17"),
    "sign": ("iOS15",),
    "silu": ("iOS15",),
    "sin": ("iOS15",),
    "sinh": ("iOS15",),
    "slice_by_index": ("iOS15", "iOS17"),
    "slice_by_size": ("iOS15", "iOS17"),
    "slice_update": ("iOS18",),
    "sliding_windows": ("iOS15", "iOS17"),
    "softmax": ("iOS15",),
    "softplus": ("iOS15",),
    "softplus_parametric": ("iOS15", "iOS17"),
    "softsign": ("iOS15",),
    "space_to_batch": ("iOS15",),
    "space_to_depth": ("iOS15",),
    "split": ("iOS15",),
    "sqrt": ("iOS15",),
    "square": ("iOS15",),
    "squeeze": ("iOS15", "iOS17"),
    "stack": ("iOS15",),
    "sub": ("iOS15",),
    "tan": ("iOS15",),
    "tanh": ("iOS15",),
    "threshold": ("iOS15",),
    "thresholded_relu": ("iOS15", "iOS17"),
    "tile": ("iOS15",),
    "topk": ("iOS15", "iOS16", "iOS17"),
    "transpose": ("iOS15", "iOS17"),
    "upsample_bilinear": ("iOS15", "iOS16"),
    "upsample_nearest_neighbor": ("iOS15",),
    "while_loop": ("iOS15",),
}


def generate() -> dict[str, tuple[str, ...]]:
    """OPSETS from coremltools' registry: core ops plus the coreml dialect (states)."""
    from coremltools.converters.mil.mil.ops.defs.coreml_dialect import ops as dialect
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    targets = {6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18"}
    out: dict[str, tuple[str, ...]] = {}
    for name, versions in SSAOpRegistry.core_ops.items():
        defs: list[str] = []
        previous = None
        for target in sorted(versions, key=int):
            if int(target) not in targets:
                continue
            cls = versions[target]
            if cls is not previous:
                defs.append(targets[int(target)])
            previous = cls
        if defs:
            out[name] = tuple(defs)
    for name, cls in SSAOpRegistry.dialect_ops.items():
        if cls.__module__ == dialect.__name__:
            out[name] = ("iOS18",)
    return dict(sorted(out.items()))


if __name__ == "__main__":  # print the table's source, to paste above
    for op, defs in generate().items():
        print(f"    {op!r}: {defs!r},")
