"""anemll-spec inspect MODEL: what a saved Core ML model holds, read from its files."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import (
    add_json,
    human_bytes,
    human_flops,
    nonempty,
    print_json,
    refuse_spec,
    table,
)

HELP = "show a model's inputs, outputs, states, ops, weights, FLOPs and compression"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=nonempty, metavar="MODEL", help=".mlpackage or .mlmodelc")
    add_json(p)


def _shape(t: dict) -> str:
    """'1x4096'; a flexible input '1x[1..512] (default 1x1)' or '1x16 (one of 1x16, 1x32)';
    a classifier's label or dict is a scalar; an array whose description
    gives no shape (older converters leave outputs' out) is '?' (unknown, not rank 0)."""
    if t.get("ranges"):  # a flexible input: what it allows, and the shape used by default
        from anemll_spec.mlmodel.features import range_text

        return f"{range_text(t['ranges'])} (default {_fixed(t['shape'])})"
    if t.get("shapes"):
        shapes = ", ".join(_fixed(s) for s in t["shapes"])
        return f"{_fixed(t['shape'])} (one of {shapes})"
    if t["shape"]:
        return _fixed(t["shape"])
    return "scalar" if t["dtype"] in ("str", "dict") else "? (not declared)"


def _fixed(shape: list) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _tensors(title: str, items: list[dict]) -> list[str]:
    if not items:
        return []
    rows = [[t["name"], _shape(t), t["dtype"]] for t in items]
    return [f"{title}:", table(rows, ["name", "shape", "dtype"]), ""]


def _weights(info: dict) -> str:
    """The weights line; of a multi-function model, said to be the default function's."""
    n, files = info["weight_bytes"], info["weight_files"]
    if len(info["functions"]) > 1:
        where = (
            f": the {info['blobs']} blobs function '{info['function']}' references, the "
            f"default of {len(info['functions'])} ({', '.join(info['functions'])}), whose ops "
            f"and FLOPs are below too; the weight files of all functions hold "
            f"{human_bytes(sum(files.values()))}"
        )
    else:
        where = f" in {len(files)} file(s), {info['blobs']} blobs"
    return f"weights {human_bytes(n)} ({n:,} B{where}), sha256 {info['weights_sha256']}"


def run(args: argparse.Namespace) -> int:
    from anemll_spec.mlmodel.inspect import inspect_model

    refuse_spec(args.model, "inspect")
    info = inspect_model(args.model)
    if args.json:
        print_json(info)
        return 0
    out = [
        f"{info['path']} ({info['kind']})",
        f"deployment target {info['deployment_target'] or '?'} "
        f"(spec version {info['spec_version']}, opset {info['opset'] or '?'})",
        _weights(info),
        f"FLOPs {human_flops(info['flops'])} ({info['flops']:,}) "
        + ", ".join(f"{k} {human_flops(v)}" for k, v in info["flops_by_op"].items()),
        "",
    ]
    out += _tensors("inputs", info["inputs"])
    out += _tensors("outputs", info["outputs"])
    out += _tensors("states", info["states"])
    if info["model_type"] != "mlProgram":  # a neuralNetwork, a pipeline, ...: not read
        out.append(
            f"ops: n/a (a {info['model_type']} model, not an ML Program: its layers, "
            "weights and FLOPs are not read, and the figures above count none)"
        )
    else:
        out.append("ops: " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    if info["compression"]:
        rows = [
            [
                c["name"],
                c["op"],
                c.get("nbits"),
                c.get("granularity"),
                _block(c.get("group_size") or c.get("block_size")),
            ]
            for c in info["compression"]
        ]
        out += [
            "",
            "compression:",
            table(rows, ["weight", "op", "nbits", "granularity", "group/block"]),
        ]
    else:
        out.append("compression: none")
    print("\n".join(out))
    return 0


def _block(size: int | list[int] | None) -> int | str | None:
    """A group or block size; a block on several axes as its shape (4x16)."""
    return "x".join(map(str, size)) if isinstance(size, list) else size
