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
trip leaves unchanged, while the condition holds, every loop variable the condition
depends on: those it reads and, through the body, those they are computed from (no
random or state op on that path: the same values then give the same trip forever). The
check runs on trips 1, 2, 4, 8, ... (a loop at a fixed point stays there, so it is caught
by twice the trips; each check copies the variables to the host). After MAX_TRIPS trips a
loop is refused in any case.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.ir import Block, Op, walk

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
    state: list[int] | None = None,
):
    """`state`: positions of the loop variables the condition depends on (loop_state), or
    None where it cannot tell (only the trip limit applies)."""
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
            checked = state is not None and trips & (trips - 1) == 0  # 1, 2, 4, ...
            if checked and all(_same(xp, values[k], new[k]) for k in state or ()):
                names = ", ".join(cond_plan.inputs[k] for k in state or ()) or "none"
                raise InputError(
                    f"{op.where()}: the loop never ends: trip {trips} left the variables "
                    f"its condition depends on ({names}) unchanged while the condition holds"
                )
            values = new
        return _result(values)

    return run


def _same(xp: Any, old: Any, new: Any) -> bool:
    """Whether a loop variable is certainly unchanged by a trip, bit for bit (False when
    unsure: a list, a large tensor)."""
    if old is new:
        return True
    if not hasattr(old, "shape") or not hasattr(new, "shape"):
        return False  # a list value: not compared
    if tuple(xp.shape(old)) != tuple(xp.shape(new)):
        return False
    if int(np.prod(xp.shape(old))) > _COMPARE_MAX_ELEMENTS:
        return False
    a, b = np.asarray(xp.to_numpy(old)), np.asarray(xp.to_numpy(new))
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


_IMPURE = "\0impure"  # in a dependency set: a random draw or a state read decides the value


def loop_state(op: Op) -> list[int] | None:
    """Positions of the loop variables a while_loop's condition depends on: those it reads,
    and through the body those they are computed from, until closed. The condition is
    then a function of these alone and of values fixed during the loop, so a trip that
    leaves them all unchanged repeats forever. None where a random or state op decides
    one of them (an unchanged trip proves nothing)."""
    if len(op.blocks) != 2:
        return None
    cond, body = op.blocks
    outs = _depends(body)
    if len(cond.outputs) != 1 or len(outs) != len(body.inputs):
        return None
    at_cond = {v.name: k for k, v in enumerate(cond.inputs)}
    at_body = {v.name: k for k, v in enumerate(body.inputs)}
    (need,) = _depends(cond)
    if _IMPURE in need:
        return None
    found = {at_cond[n] for n in need if n in at_cond}
    todo = list(found)
    while todo:
        deps = outs[todo.pop()]
        if _IMPURE in deps:
            return None
        for k in {at_body[n] for n in deps if n in at_body} - found:
            found.add(k)
            todo.append(k)
    return sorted(found)


def _depends(block: Block) -> list[set[str]]:
    """For each output of `block`, the block inputs it is computed from (values from
    outside the block are fixed during a loop), with _IMPURE where a random or state op
    on the way decides it."""
    deps: dict[str, set[str]] = {v.name: {v.name} for v in block.inputs}
    for op in block.ops:
        d: set[str] = set().union(*(deps.get(r, set()) for r in op.refs()))
        if any(o.type.startswith("random") or o.type == "read_state" for o in walk([op])):
            d.add(_IMPURE)
        for o in op.outputs:
            deps[o.name] = d
    return [deps.get(n, set()) for n in block.outputs]
