"""Control flow: `cond` and `while_loop`, ops that own nested blocks.

Each nested block is prepared like a function body (its steps, kernels and frees), once,
at load. At run time a block runs in its own scope layered over the enclosing one
(a `ChainMap`): it reads any variable visible where its op stands, and what it defines
stays inside it. A block returns the values its outputs name.

- `cond(pred)`: blocks [true branch, false branch]; `pred` is a scalar bool read on the
  host, then one branch runs.
- `while_loop(loop_vars)`: blocks [condition, body], both taking the loop variables as
  their inputs. The condition runs first (a zero-trip loop returns `loop_vars`
  unchanged); while it is true the body's outputs become the next loop variables
  (tf.while_loop's semantics, as coremltools' defs describe them).

A loop that never ends must not hang the bench: it is refused (InputError) when a body
trip leaves every loop variable the condition reads unchanged while the condition holds
(a condition without random or state ops then holds forever), and after MAX_TRIPS trips
in any case.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anemll_spec.errors import InputError

CONTROL_OPS = ("cond", "while_loop")
# Trips after which a while_loop is refused as endless: far above any loop a model runs
# per prediction (a token loop, an unrolled sequence), reached in seconds by a small body.
MAX_TRIPS = 1_000_000
# Loop variables compared for the endless-loop check are copied to the host: larger ones
# are not compared (the trip limit still applies).
_COMPARE_MAX_ELEMENTS = 1 << 16


@dataclass
class BlockPlan:
    inputs: list[str]
    steps: list[Any]  # program.Step
    outputs: list[str]
    consts: dict[str, Any] = field(default_factory=dict)  # outputs that are constants


RunSteps = Callable[[list, Any], None]


def _result(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else tuple(values)


def run_block(plan: BlockPlan, env: Any, values: list[Any], run_steps: RunSteps) -> list[Any]:
    local = ChainMap({}, env)
    for name, v in zip(plan.inputs, values, strict=True):
        local[name] = v
    run_steps(plan.steps, local)
    return [local[n] for n in plan.outputs]


def _truth(xp: Any, value: Any, where: str) -> bool:
    arr = np.asarray(xp.to_numpy(value))
    if arr.size != 1:
        raise InputError(f"{where}: condition has {arr.size} values, expected one")
    return bool(arr.reshape(()))


def make_cond(op, pred: str, plans: list[BlockPlan], xp: Any, run_steps: RunSteps):
    if len(plans) != 2:
        raise InputError(f"{op.where()}: cond needs 2 blocks, has {len(plans)}")
    true_plan, false_plan = plans
    for plan in plans:
        if plan.inputs:
            raise InputError(f"{op.where()}: a cond branch takes no inputs")
        if len(plan.outputs) != len(op.outputs):
            raise InputError(
                f"{op.where()}: a branch returns {len(plan.outputs)} values for "
                f"{len(op.outputs)} outputs"
            )

    def run(env):
        plan = true_plan if _truth(xp, env[pred], op.where()) else false_plan
        return _result(run_block(plan, env, [], run_steps))

    return run


def make_while(
    op,
    loop_vars: list[str],
    plans: list[BlockPlan],
    xp: Any,
    run_steps: RunSteps,
    cond_reads: list[int] | None = None,
):
    """`cond_reads`: positions of the loop variables the condition block reads, where the
    condition is a pure function of them and of values fixed during the loop (None: it
    is not, e.g. it draws random numbers or reads a state; only the trip limit applies)."""
    if len(plans) != 2:
        raise InputError(f"{op.where()}: while_loop needs 2 blocks, has {len(plans)}")
    cond_plan, body_plan = plans
    n = len(loop_vars)
    if len(cond_plan.inputs) != n or len(body_plan.inputs) != n:
        raise InputError(f"{op.where()}: blocks must take the {n} loop variables")
    if len(cond_plan.outputs) != 1:
        raise InputError(f"{op.where()}: the condition block must return one bool")
    if len(body_plan.outputs) != n or len(op.outputs) != n:
        raise InputError(f"{op.where()}: body and op must give {n} loop variables")

    def run(env):
        values = [env[k] for k in loop_vars]
        trips = 0
        while _truth(xp, run_block(cond_plan, env, values, run_steps)[0], op.where()):
            if trips == MAX_TRIPS:
                raise InputError(
                    f"{op.where()}: the loop is still running after {MAX_TRIPS:,} trips; "
                    "refused as a loop that does not end"
                )
            new = run_block(body_plan, env, values, run_steps)
            trips += 1
            if cond_reads is not None and all(_same(xp, values[k], new[k]) for k in cond_reads):
                names = ", ".join(cond_plan.inputs[k] for k in cond_reads) or "none"
                raise InputError(
                    f"{op.where()}: the loop never ends: trip {trips} left the variables "
                    f"its condition reads ({names}) unchanged while the condition holds"
                )
            values = new
        return _result(values)

    return run


def _same(xp: Any, old: Any, new: Any) -> bool:
    """Whether a loop variable is certainly unchanged by a trip (False when unsure)."""
    if old is new:
        return True
    if not hasattr(old, "shape") or not hasattr(new, "shape"):
        return False  # a list value: not compared
    if tuple(xp.shape(old)) != tuple(xp.shape(new)):
        return False
    if int(np.prod(xp.shape(old))) > _COMPARE_MAX_ELEMENTS:
        return False
    a, b = np.asarray(xp.to_numpy(old)), np.asarray(xp.to_numpy(new))
    return a.dtype == b.dtype and bool(np.array_equal(a, b))
