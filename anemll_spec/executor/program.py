"""`load()` and `Program`: a saved ML Program parsed, lowered and prepared for execution."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.executor.arrays import numpy_ops
from anemll_spec.executor.control import (
    CONTROL_OPS,
    BlockPlan,
    loop_state,
    make_cond,
    make_while,
)
from anemll_spec.executor.decompress import evaluate, is_compile_time
from anemll_spec.executor.inputs import check_sizes, convert_inputs, match_description
from anemll_spec.executor.kernels import KERNELS
from anemll_spec.executor.kernels.base import STATE_KEY, VALUE_OPS, Prep, Run
from anemll_spec.executor.state import State
from anemll_spec.mlmodel.dtypes import FLOAT_NAMES, np_name
from anemll_spec.mlmodel.features import TensorSpec, spec_of
from anemll_spec.mlmodel.ir import Function, Op, VarType, materialize, walk
from anemll_spec.mlmodel.model import open_model, opset_target

# A lowering pass rewrites a parsed function before kernels are prepared (fusions,
# re-layouts); it must keep the function's inputs, outputs and semantics.
Pass = Callable[[Function], Function]


class ExecutionError(InputError):
    """An op failed while running (bad shapes reaching it, out-of-range indices...)."""


@dataclass
class _Out:
    name: str
    kind: str  # "float", "tensor" (dtype enforced), "value" (lists...: passed as is)
    dtype: str  # numpy dtype name for non-float tensors
    shape: tuple[int, ...] | None


@dataclass
class Step:
    index: int
    type: str
    name: str
    run: Run
    outputs: list[_Out]
    free: list[str]  # variables whose last use is this step


def _spec_of(v: VarType, output: bool = False) -> TensorSpec:
    return spec_of(v, "the executor", output)


def _out_of(v: VarType) -> _Out:
    if v.dtype in FLOAT_NAMES:
        return _Out(v.name, "float", "", v.static_shape)
    name = np_name(v.dtype)
    if name is None:  # list values, strings...: kernels own them
        return _Out(v.name, "value", "", None)
    return _Out(v.name, "tensor", name, v.static_shape)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def load(
    path: str | Path,
    fp16: bool = False,
    verbose: bool = False,
    function: str | None = None,
    *,
    xp: Any = None,
    passes: Iterable[Pass] = (),
) -> Program:
    """Load a saved ML Program (.mlpackage, .mlmodel or compiled .mlmodelc) for execution;
    see the package docstring."""
    t0 = time.perf_counter()
    path = Path(path)
    model = open_model(path)
    parsed = model.program(function)
    fn = parsed.function(function, str(path))
    order = parsed.input_order.get(fn.name)
    for p in passes:
        fn = p(fn)
    prog = Program(
        fn,
        xp=xp or numpy_ops,
        fp16=fp16,
        path=path,
        input_order=order,
        release_pages=model.weights.release_pages,
    )
    if (
        model.kind == "mlmodelc"
        and model.metadata is not None
        and fn.name == parsed.default_function
    ):
        match_description(prog, model.io(), path)
    if model.spec is not None:  # a flexible input's ranges or enumerated shapes
        declared = model.io(fn.name if function is not None else None).inputs
        prog.flexible = {t.name: t for t in declared if t.ranges or t.shapes}
    model.weights.release_pages(0)  # decoded weights are copies: the file pages can go
    prog.load_s = time.perf_counter() - t0
    if verbose:
        print(
            f"executor: loaded {path.name} function '{fn.name}': {len(prog.steps)} kernels, "
            f"{prog.const_count} constants, load {prog.load_s:.2f} s, "
            f"RSS {_rss_mb():.0f} MiB",
            file=sys.stderr,
        )
    return prog


class Program:
    """A prepared function: `inputs`, `outputs`, `states` (name -> TensorSpec), `predict()`."""

    def __init__(
        self,
        fn: Function,
        *,
        xp: Any = numpy_ops,
        fp16: bool = False,
        path: Path | None = None,
        input_order: list[str] | None = None,
        release_pages: Callable[[], None] | None = None,
    ):
        self.xp = xp
        self._release_pages = release_pages
        self.fp16 = fp16
        self.path = path
        self.function_name = fn.name
        self.load_s = 0.0
        self.flexible: dict[str, Any] = {}  # input -> its description, where flexible
        types: dict[str, VarType] = {v.name: v for v in fn.inputs}
        for op in walk(fn.ops):
            types.update({o.name: o for o in op.outputs})
            for block in op.blocks:
                types.update({v.name: v for v in block.inputs})
        missing = [o for o in fn.outputs if o not in types]
        if missing:
            raise InputError(f"function '{fn.name}': outputs {missing} are never produced")
        by_name = {v.name: v for v in fn.inputs if not v.is_state}
        order = [n for n in (input_order or []) if n in by_name]
        order += [n for n in by_name if n not in order]
        self.inputs = {n: _spec_of(by_name[n]) for n in order}
        self.outputs = {n: _spec_of(types[n], output=True) for n in fn.outputs}
        # outputs a value op makes (a classifier's label and dict): returned as they are
        self.value_outputs = frozenset(
            o.name for op in walk(fn.ops) if op.type in VALUE_OPS for o in op.outputs
        ) & set(fn.outputs)
        self.states = {v.name: _spec_of(v) for v in fn.inputs if v.is_state}
        self.op_counts = Counter(op.type for op in walk(fn.ops))
        check_sizes(types, fn.name)
        self._pool: dict[str, Any] = {}
        self._const_names: set[str] = set()
        # uses of each variable as an argument anywhere (decoded constants are dropped
        # after their last consumer is prepared: one big weight at a time)
        self._uses = Counter(
            a.ref for op in walk(fn.ops) for args in op.inputs.values() for a in args
        )
        self._keep = set(fn.outputs) | {
            n for op in walk(fn.ops) for b in op.blocks for n in b.outputs
        }
        consts: dict[str, Any] = {}
        target = opset_target(fn.opset)  # what some ops' definitions depend on (clip)
        self._ios = int(target[3:]) if target else None
        self.steps: list[Step] = self._prepare_ops(
            fn.ops, consts, types, set(fn.outputs) | set(self.states), fn.name
        )
        for out in fn.outputs:
            if out in consts:
                self._pool[out] = self._to_backend(consts[out])
        self.const_count = len(self._const_names)
        consts.clear()  # kernels keep what they need; drop the decoded originals

    # -- preparation --------------------------------------------------------------------
    def _to_backend(self, value: Any, dtype: str | None = None) -> Any:
        arr = np.asarray(value)
        if arr.dtype == np.float16 and self.xp.float_dtype == "float16":
            return self.xp.asarray(arr, "float16")  # exact: no fp32 round trip of big weights
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
            if self.fp16:
                arr = arr.astype(np.float16).astype(np.float32)
            return self.xp.asarray(arr, self.xp.float_dtype)
        if arr.dtype.kind in "OUS":
            raise InputError(f"string value {value!r} used as a tensor")
        return self.xp.asarray(arr)

    def _prepare_ops(
        self,
        ops: list[Op],
        consts: dict[str, Any],
        types: dict[str, VarType],
        keep: set[str],
        fn_name: str,
    ) -> list[Step]:
        """Steps of one block: constants evaluated, kernels (and nested blocks) prepared."""
        steps: list[Step] = []
        step_ops: list[Op] = []
        for op in ops:
            if is_compile_time(op.type):
                value = evaluate(op, _resolver(op, consts), self.fp16)
                values = value if len(op.outputs) > 1 else (value,)
                for var, v in zip(op.outputs, values, strict=True):
                    consts[var.name] = v
                    self._const_names.add(var.name)
            else:
                if op.blocks or op.type in CONTROL_OPS:
                    steps.append(self._prepare_control(op, consts, types, fn_name))
                else:
                    steps.append(self._prepare_op(op, fn_name, consts, types))
                step_ops.append(op)
            for args in op.inputs.values():
                for a in args:
                    if a.ref in consts:
                        self._uses[a.ref] -= 1
                        if self._uses[a.ref] <= 0 and a.ref not in self._keep:
                            del consts[a.ref]
            if self._release_pages is not None:
                self._release_pages()
        self._plan_frees(steps, step_ops, keep)
        return steps

    def _prep(self, op: Op, fn_name: str, consts: dict, types: dict) -> Prep:
        return Prep(
            op, self.xp, consts, self._pool, self._to_backend, self.fp16, types, fn_name, self._ios
        )

    def _prepare_op(
        self, op: Op, fn_name: str, consts: dict[str, Any], types: dict[str, VarType]
    ) -> Step:
        factory = KERNELS.get(op.type)
        if factory is None:
            raise InputError(
                f"unsupported op type '{op.type}' (op '{op.name}', index {op.index} in "
                f"function '{fn_name}')"
            )
        prep = self._prep(op, fn_name, consts, types)
        try:
            run = factory(prep)
        except InputError:
            raise
        except Exception as exc:  # an attribute the kernel's checks missed: refuse the op
            raise prep.fail(f"cannot be prepared: {type(exc).__name__}: {exc}") from exc
        if op.type in VALUE_OPS:
            outs = [_Out(o.name, "value", "", None) for o in op.outputs]
        else:
            outs = [_out_of(o) for o in op.outputs]
        return Step(op.index, op.type, op.name, run, outs, [])

    def _prepare_control(
        self, op: Op, consts: dict[str, Any], types: dict[str, VarType], fn_name: str
    ) -> Step:
        if op.type not in CONTROL_OPS:
            raise InputError(
                f"{op.where()} in function '{fn_name}': an op with nested blocks that is "
                f"not control flow ({', '.join(CONTROL_OPS)}) is not supported"
            )
        plans = []
        for block in op.blocks:
            steps = self._prepare_ops(block.ops, consts, types, set(block.outputs), fn_name)
            for name in block.outputs:
                if name in consts and name not in self._pool:
                    self._pool[name] = self._to_backend(consts[name])
            plans.append(BlockPlan([v.name for v in block.inputs], steps, list(block.outputs)))
        prep = self._prep(op, fn_name, consts, types)
        if op.type == "cond":
            run = make_cond(op, prep.ref("pred"), plans, self.xp, self._run_steps)
        else:
            run = make_while(
                op, prep.refs("loop_vars"), plans, self.xp, self._run_steps, loop_state(op)
            )
        return Step(op.index, op.type, op.name, run, [_out_of(o) for o in op.outputs], [])

    def _plan_frees(self, steps: list[Step], ops: list[Op], keep: set[str]) -> None:
        last: dict[str, int] = {}
        for i, op in enumerate(ops):
            for name in op.refs():
                if name not in self._const_names:
                    last[name] = i
        for name, i in last.items():
            if name not in keep:
                steps[i].free.append(name)

    # -- execution ----------------------------------------------------------------------
    def make_state(self) -> State:
        """Fresh state tensors (zeros) for this program; `predict` updates them in place."""
        return State(dict(self.states), self.xp, self)

    def predict(self, inputs: dict[str, Any], state: State | None = None) -> dict[str, Any]:
        """Run the function. Float outputs come back as float32 (float16 with fp16=True);
        a classifier's label and probabilities as Core ML returns them (str or int, dict)."""
        xp = self.xp
        tensors = self.run(convert_inputs(self, inputs), state)
        out: dict[str, Any] = {}
        for name in self.outputs:
            if name in self.value_outputs:
                out[name] = tensors[name]
                continue
            arr = np.asarray(xp.to_numpy(tensors[name]))
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float16 if self.fp16 else np.float32, copy=False)
            out[name] = arr
        return out

    def convert_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Check host inputs and convert them to backend tensors (what `run` takes)."""
        return convert_inputs(self, inputs)

    def run(self, tensors: dict[str, Any], state: State | None = None) -> dict[str, Any]:
        """Run on inputs already converted by `convert_inputs`; outputs stay backend tensors
        (on a GPU backend nothing is copied to the host and nothing waits for the device)."""
        env = dict(self._pool)
        env.update(tensors)
        if self.states:
            if state is None:
                state = self.make_state()
            elif not isinstance(state, State) or state.specs != self.states:
                raise InputError("state was not made by this program's make_state()")
        env[STATE_KEY] = state
        with np.errstate(all="ignore"):  # nan/inf are results to report, not warnings
            self._run_steps(self.steps, env)
        return {name: env[name] for name in self.outputs}

    def _run_steps(self, steps: list[Step], env: Any) -> None:
        for step in steps:
            try:
                result = step.run(env)
            except InputError:
                raise
            except Exception as exc:  # numpy/backends raise many kinds; name the op
                raise ExecutionError(
                    f"op {step.index} '{step.name}' ({step.type}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if len(step.outputs) == 1:
                result = (result,)
            for spec, value in zip(step.outputs, result, strict=True):
                env[spec.name] = self._finish(step, spec, value)
            for name in step.free:
                env.pop(name, None)

    def _finish(self, step: Step, spec: _Out, value: Any) -> Any:
        xp = self.xp
        if spec.kind == "value":
            return value
        if spec.kind == "float":
            if xp.dtype_name(value) != xp.float_dtype:
                value = xp.astype(xp.asarray(value), xp.float_dtype)
            if self.fp16:
                value = xp.round_to_fp16(value)
        elif xp.dtype_name(value) != spec.dtype:
            value = xp.astype(xp.asarray(value), spec.dtype)
        if spec.shape is not None and tuple(xp.shape(value)) != spec.shape:
            raise ExecutionError(
                f"op {step.index} '{step.name}' ({step.type}): output '{spec.name}' has shape "
                f"{tuple(xp.shape(value))}, the program declares {spec.shape}"
            )
        return value


def _resolver(op: Op, consts: dict[str, Any]) -> Callable[[str], Any]:
    def resolve(param: str) -> Any:
        args = op.inputs.get(param)
        if not args:
            return None
        a = args[0]
        if a.ref is None:
            return materialize(a.value)
        if a.ref not in consts:
            raise InputError(f"{op.where()}: input '{param}' is not a compile-time constant")
        return consts[a.ref]

    return resolve
