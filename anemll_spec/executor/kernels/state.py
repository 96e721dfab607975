"""State kernels (iOS18): read_state, write_state, coreml_update_state.

The `State` object of the current call sits in the env under `STATE_KEY`; it stores each
state in its declared dtype (an fp16 KV cache holds fp16 values, as Core ML's does).
"""

from __future__ import annotations

from anemll_spec.executor.kernels.base import STATE_KEY, Prep, Run, kernel


def _state_name(p: Prep, param: str) -> str:
    args = p.op.inputs.get(param) or []
    if len(args) != 1 or args[0].ref is None:
        raise p.fail(f"input '{param}' must name a state")
    name = args[0].ref
    t = p._types.get(name)
    if t is None or not t.is_state:
        raise p.fail(f"input '{param}' is '{name}', which is not a state of the function")
    return name


@kernel("read_state")
def _read_state(p: Prep) -> Run:
    name = _state_name(p, "input")
    return lambda env: env[STATE_KEY].get_compute(name)


@kernel("write_state")
def _write_state(p: Prep) -> Run:
    name, data = _state_name(p, "input"), p.ref("data")

    def write_state(env):
        env[STATE_KEY].set_compute(name, env[data])
        return ()

    return write_state


@kernel("coreml_update_state")
def _coreml_update_state(p: Prep) -> Run:
    name, value = _state_name(p, "state"), p.ref("value")

    def update_state(env):
        env[STATE_KEY].set_compute(name, env[value])
        return env[STATE_KEY].get_compute(name)

    return update_state
