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
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anemll_spec.errors import InputError

CONTROL_OPS = ("cond", "while_loop")


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


def make_while(op, loop_vars: list[str], plans: list[BlockPlan], xp: Any, run_steps: RunSteps):
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
        while _truth(xp, run_block(cond_plan, env, values, run_steps)[0], op.where()):
            values = run_block(body_plan, env, values, run_steps)
        return _result(values)

    return run
