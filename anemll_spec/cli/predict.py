"""anemll-spec predict MODEL: run a saved ML Program with the reference executor."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from anemll_spec.cli._common import (
    add_json,
    nonempty,
    nonnegative_int,
    out_file,
    print_json,
    refuse_spec,
    table,
)

HELP = "run a saved model with the reference (numpy) executor and summarise its outputs"
DESCRIPTION = (
    "Run a saved ML Program (.mlpackage, or compiled .mlmodelc) op by op with numpy (no Core "
    "ML needed). Without --inputs, "
    "inputs are synthesised from --seed the same way the benchmark runner does."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=nonempty, metavar="MODEL", help=".mlpackage or .mlmodelc to run")
    p.add_argument("--inputs", metavar="NPZ", type=nonempty, help="input arrays by name (.npz)")
    p.add_argument(
        "--out",
        metavar="NPZ",
        type=nonempty,
        help="write the outputs to this .npz (replaced); a classifier's {label: probability} "
        "output NAME as the arrays NAME.keys and NAME.values, in class order",
    )
    p.add_argument("--fp16", action="store_true", help="round every op's output to fp16")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of synthesised inputs (default 0)"
    )
    p.add_argument("--function", metavar="NAME", help="function of a multifunction model")
    p.add_argument("-v", "--verbose", action="store_true", help="print load time and memory")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from anemll_spec.errors import InputError
    from anemll_spec.executor import load
    from anemll_spec.paths import write_file

    refuse_spec(args.model, "predict")
    if args.out:  # checked before the work, not after it
        if Path(args.out).suffix != ".npz":
            raise InputError(f"--out {args.out}: expected a .npz file name")
        out_file(args.out, force=True)
    prog = load(args.model, fp16=args.fp16, verbose=args.verbose, function=args.function)
    if args.inputs:
        inputs, source = _read_npz(Path(args.inputs)), "file"
    else:
        inputs = synthesise(Path(args.model), args.seed, args.function)
        source = f"seed {args.seed}"
    state = prog.make_state() if prog.states else None
    t0 = time.perf_counter()
    outputs = prog.predict(inputs, state=state)
    predict_s = time.perf_counter() - t0
    if args.out:  # beside it, then renamed: no half-written .npz, a FIFO not waited on
        arrays = npz_arrays(outputs)
        try:
            write_file(Path(args.out), lambda f: np.savez(f, **arrays))
        except OSError as exc:
            raise InputError(f"--out {args.out}: cannot write it: {exc.strerror or exc}") from None
    stats = {name: summarise(arr) for name, arr in outputs.items()}
    if args.json:
        print_json(
            {
                "model": str(args.model),
                "function": prog.function_name,
                "fp16": args.fp16,
                "inputs_from": source,
                "load_s": prog.load_s,
                "predict_s": predict_s,
                "inputs": {
                    n: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                    for n, v in inputs.items()
                },
                "outputs": stats,
            }
        )
        return 0
    rows = [
        [
            n,
            "x".join(map(str, s["shape"])) or "scalar",
            s["dtype"],
            _g(s.get("min")),
            _g(s.get("max")),
            _g(s.get("mean")),
            _g(s.get("std")),
            s.get("nan", "-"),
            s.get("inf", "-"),
        ]
        for n, s in stats.items()
    ]
    print(table(rows, ["output", "shape", "dtype", "min", "max", "mean", "std", "nan", "inf"]))
    for n, s in stats.items():
        if "value" in s:
            print(f"{n}: {_value_line(s)}")
    print(
        f"\ninputs: {source}; load {prog.load_s:.2f} s, predict {predict_s * 1e3:.1f} ms; "
        + precision_note(prog, args.fp16),
        file=sys.stderr,
    )
    return 0


def precision_note(prog: Any, fp16: bool) -> str:
    """Why the dtype column may differ from `inspect`'s: the reference executor computes
    floats in fp32 whatever the model declares (Core ML runs an fp16 model in fp16)."""
    declared = sorted({t.dtype for t in prog.outputs.values() if t.dtype.startswith("float")})
    if fp16:
        return "float outputs computed by the reference executor with every op rounded to fp16"
    said = f" (the model declares {', '.join(declared)})" if declared else ""
    return (
        f"float outputs computed in fp32 by the reference executor{said}; --fp16 rounds "
        "every op's output to fp16"
    )


def summarise(arr: Any) -> dict[str, Any]:
    """Shape, dtype and statistics over the finite values, plus nan/inf counts; a
    classifier's label or {label: probability} output: its value, no statistics."""
    import numpy as np

    if isinstance(arr, dict):  # JSON keys are strings: key_dtype says what they were
        keys = {type(k).__name__ for k in arr}
        return {
            "shape": [],
            "dtype": "dict",
            "key_dtype": "int64" if keys == {"int"} else "str",
            "size": len(arr),
            "value": {str(k): float(v) for k, v in arr.items()},
        }
    if isinstance(arr, (str, int)):
        return {"shape": [], "dtype": "str" if isinstance(arr, str) else "int64", "value": arr}
    a = np.asarray(arr)
    stats: dict[str, Any] = {"shape": list(a.shape), "dtype": str(a.dtype), "nan": 0, "inf": 0}
    v = a.astype(np.float64).reshape(-1)
    if a.dtype.kind == "f":
        stats["nan"] = int(np.isnan(v).sum())
        stats["inf"] = int(np.isinf(v).sum())
        v = v[np.isfinite(v)]
    if v.size:
        stats.update(
            min=float(v.min()), max=float(v.max()), mean=float(v.mean()), std=float(v.std())
        )
    else:
        stats.update(min=None, max=None, mean=None, std=None)
    return stats


def npz_arrays(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as named arrays an .npz holds without pickling: a dict output NAME as
    NAME.keys and NAME.values (class order)."""
    import numpy as np

    arrays: dict[str, Any] = {}
    for name, value in outputs.items():
        if isinstance(value, dict):
            arrays[f"{name}.keys"] = np.asarray(list(value.keys()))
            arrays[f"{name}.values"] = np.asarray(list(value.values()), dtype=np.float64)
        else:
            arrays[name] = np.asarray(value)
    return arrays


def _value_line(s: dict[str, Any], top: int = 5) -> str:
    """A label as is; a {label: probability} dict: its size and highest entries."""
    if s["dtype"] != "dict":
        return repr(s["value"])
    best = sorted(s["value"].items(), key=lambda kv: -kv[1])[:top]
    shown = ", ".join(f"{k} {v:.6g}" for k, v in best)
    head = f"highest {len(best)}" if len(best) < s["size"] else "all"
    return f"{s['size']} classes ({s['key_dtype']} labels), {head}: {shown}"


def synthesise(path: Path, seed: int, function: str | None = None) -> dict[str, Any]:
    """Seeded inputs of the function that runs, made exactly as the runner makes them
    (`model_io.synth_inputs`)."""
    from anemll_spec import model_io

    return model_io.synth_inputs(model_io.describe(path, function), seed=seed)


def _read_npz(path: Path) -> dict[str, Any]:
    import zipfile

    import numpy as np

    from anemll_spec.errors import InputError
    from anemll_spec.paths import NOT_REGULAR, is_special

    try:  # a FIFO hung np.load; an empty file raised EOFError, a traceback
        if is_special(path):
            raise InputError(f"{path}: {NOT_REGULAR}; give an .npz")
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{path}: cannot read input arrays ({type(exc).__name__}); give an .npz of "
            "named arrays (numpy.savez)"
        ) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: one unnamed array (.npy); give an .npz of named arrays")
    with data:
        try:  # members are read (and may fail) only here
            _check_members(path, data.zip)
            return {k: data[k] for k in data.files}
        except MemoryError:
            raise InputError(f"{path}: an input array does not fit in memory") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(
                f"{path}: cannot read input arrays ({type(exc).__name__}: {exc}); give an "
                ".npz of named numeric arrays (numpy.savez)"
            ) from None


def _check_members(path: Path, archive: Any) -> None:
    """Refuse a member whose .npy header claims more bytes than the member holds, or more
    memory than is available, before numpy allocates the claimed array (a header of
    shape (2**40,) in a 300-byte file was a MemoryError traceback)."""
    import math

    import numpy as np

    from anemll_spec.errors import InputError
    from anemll_spec.mlmodel.limits import check_alloc

    fmt = np.lib.format
    for info in archive.infolist():
        where = f"{path}: member {info.filename!r}"
        with archive.open(info) as f:
            if f.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:  # kept as raw bytes
                check_alloc(info.file_size, where, "reading it needs")
                continue
            f.seek(0)
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:  # 3.0 (UTF-8 field names): numpy's own (private) reader of that header
                shape, _, dtype = getattr(fmt, "_read_array_header")(f, version)  # noqa: B009
            claimed = math.prod(shape) * dtype.itemsize  # Python ints: exact
            held = info.file_size - f.tell()
            if claimed > held:
                raise InputError(
                    f"{where} claims shape {shape} of {dtype} ({claimed:,} bytes) but holds "
                    f"{held:,} bytes (damaged?)"
                )
            check_alloc(claimed, where, "reading it needs")


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"
