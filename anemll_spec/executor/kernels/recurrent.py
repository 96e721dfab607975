"""Recurrent kernels: gru, lstm, rnn, one time step after another.

Weights are (gates * H, I) and (gates * H, H) in the defs' gate orders (gru: r, o, z;
lstm: i, f, o, z); a single bias is the input and hidden biases summed. A reverse direction
reads the sequence backwards and emits its outputs in the order it computes them (as
coremltools' reference does); a bidirectional lstm aligns the backward outputs with the
input steps and concatenates [forward, backward] (as PyTorch). In fp16 mode the states
carried from step to step are rounded to fp16, as an fp16 model holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel

ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear", "scaled_tanh", "hard_sigmoid", "sigmoid_hard")


def _activation(p: Prep, param: str, default: str) -> Callable[[Any], Any]:
    """The named activation with its standard parameters (scaled_tanh: alpha = beta = 1;
    hard_sigmoid: 0.2 x + 0.5, clipped), as coremltools' reference implementation. The
    name in any case: coremltools' lstm def checks it lower-cased (gru and rnn check none)."""
    xp = p.xp
    given = p.str(param, default)
    name = given.lower()
    p.check(name in ACTIVATIONS, f"{param} '{given}' is not one of {', '.join(ACTIVATIONS)}")
    return {
        "sigmoid": xp.sigmoid,
        "tanh": xp.tanh,
        "scaled_tanh": xp.tanh,
        "relu": lambda v: xp.maximum(v, 0.0),
        "linear": lambda v: v,
        "hard_sigmoid": lambda v: xp.clip(v * 0.2 + 0.5, 0.0, 1.0),
        "sigmoid_hard": lambda v: xp.clip(v * 0.2 + 0.5, 0.0, 1.0),
    }[name]


def _matrices(p: Prep, ih: str, hh: str, bias: list[str], gates: int) -> tuple:
    """(W_ih^T, W_hh^T, b) as tensors: x @ W_ih^T + h @ W_hh^T + b gives all gates."""
    w_ih = np.asarray(p.const(ih), dtype=np.float32)
    w_hh = np.asarray(p.const(hh), dtype=np.float32)
    hidden = w_hh.shape[1]
    p.check(
        w_ih.ndim == 2
        and w_hh.shape == (gates * hidden, hidden)
        and w_ih.shape[0] == gates * hidden,
        f"{ih} {w_ih.shape} / {hh} {w_hh.shape} are not ({gates}H, I) / ({gates}H, H)",
    )
    b = np.zeros(gates * hidden, np.float32)
    for name in bias:
        if p.has(name):
            b = b + np.asarray(p.const(name), dtype=np.float32).reshape(-1)
    return p.tensor(w_ih.T.copy()), p.tensor(w_hh.T.copy()), p.tensor(b), hidden


def _steps(xp, x: Any, reverse: bool) -> list[Any]:
    steps = [xp.getitem(x, (t,)) for t in range(xp.shape(x)[0])]
    return steps[::-1] if reverse else steps


def _direction(p: Prep, allowed: tuple[str, ...]) -> str:
    return p.choice("direction", allowed, "forward")


def _split(xp, v: Any, parts: int, hidden: int) -> list[Any]:
    return [xp.getitem(v, (slice(None), slice(i * hidden, (i + 1) * hidden))) for i in range(parts)]


@kernel("rnn")
def _rnn(p: Prep) -> Run:
    """h_t = activation(W_ih x_t + W_hh h_{t-1} + b)."""
    xp, x, h0 = p.xp, p.ref("x"), p.ref("initial_h")
    reverse = _direction(p, ("forward", "reverse")) == "reverse"
    sequence = p.bool("output_sequence", False)
    act = _activation(p, "activation", "tanh")
    w_ih, w_hh, b, _ = _matrices(p, "weight_ih", "weight_hh", ["bias"], 1)

    def rnn(env):
        h, outs = env[h0], []
        for xt in _steps(xp, env[x], reverse):
            h = p.round(act(xp.matmul(xt, w_ih) + xp.matmul(h, w_hh) + b))
            outs.append(h)
        return (xp.stack(outs, 0) if sequence else xp.expand_dims(h, [0])), h

    return rnn


@kernel("gru")
def _gru(p: Prep) -> Run:
    """r, z = recurrent_activation(...); o = activation(W_io x + W_ho (r * h) + b_o) (the
    reset gate before the product, as coremltools' reference computes), or with
    reset_after (iOS18) activation(W_io x + b_io + r * (W_ho h + b_ho)) as PyTorch's GRU;
    h_t = (1 - z) * o + z * h_{t-1}."""
    xp, x, h0 = p.xp, p.ref("x"), p.ref("initial_h")
    reverse = _direction(p, ("forward", "reverse")) == "reverse"
    sequence = p.bool("output_sequence", False)
    gate = _activation(p, "recurrent_activation", "sigmoid")
    act = _activation(p, "activation", "tanh")
    after = p.bool("reset_after", False)
    w_ih, w_hh, b, hidden = _matrices(
        p, "weight_ih", "weight_hh", [] if after else ["bias", "input_bias"], 3
    )
    b_in = _vector(p, "input_bias", 3 * hidden) if after else None
    b_hh = _vector(p, "bias", 3 * hidden) if after else None

    def gru(env):
        h, outs = env[h0], []
        for xt in _steps(xp, env[x], reverse):
            xi = xp.matmul(xt, w_ih) + (b if b_in is None else b_in)
            xr, xo, xz = _split(xp, xi, 3, hidden)
            hr, ho, hz = _split(xp, xp.matmul(h, w_hh) + (0.0 if b_hh is None else b_hh), 3, hidden)
            r, z = gate(xr + hr), gate(xz + hz)
            if after:
                o = act(xo + r * ho)
            else:  # W_ho (r * h): the hidden third of w_hh applied to the reset state
                who = xp.getitem(w_hh, (slice(None), slice(hidden, 2 * hidden)))
                o = act(xo + xp.matmul(r * h, who))
            h = p.round((1 - z) * o + z * h)
            outs.append(h)
        return (xp.stack(outs, 0) if sequence else xp.expand_dims(h, [0])), h

    return gru


def _vector(p: Prep, name: str, size: int) -> Any:
    if not p.has(name):
        return p.tensor(np.zeros(size, np.float32))
    return p.tensor(np.asarray(p.const(name), dtype=np.float32).reshape(-1))


@kernel("lstm")
def _lstm(p: Prep) -> Run:
    """i, f, o = recurrent_activation(W x + R h + b + peephole * c), z =
    cell_activation(W x + R h + b); c_t = f * c_{t-1} + i * z, clipped to [-clip, clip];
    h_t = o * activation(c_t); the o peephole reads c_t, i and f read c_{t-1}."""
    xp, x, h0, c0 = p.xp, p.ref("x"), p.ref("initial_h"), p.ref("initial_c")
    direction = _direction(p, ("forward", "reverse", "bidirectional"))
    sequence = p.bool("output_sequence", False)
    gate = _activation(p, "recurrent_activation", "sigmoid")
    cell = _activation(p, "cell_activation", "tanh")
    act = _activation(p, "activation", "tanh")
    clip = p.scalar("clip") if p.has("clip") else None
    fwd = _lstm_weights(p, "")
    if direction == "bidirectional":
        p.check(
            p.has("weight_ih_back") and p.has("weight_hh_back"),
            "bidirectional needs *_back weights",
        )
        back = _lstm_weights(p, "_back")

    def run_direction(weights, xs, h, c, reverse):
        w_ih, w_hh, b, peep, hidden = weights
        outs = []
        for xt in _steps(xp, xs, reverse):
            g = xp.matmul(xt, w_ih) + xp.matmul(h, w_hh) + b
            gi, gf, go, gz = _split(xp, g, 4, hidden)
            if peep is not None:
                pi, pf, po = peep
                gi, gf = gi + c * pi, gf + c * pf
            i, f, z = gate(gi), gate(gf), cell(gz)
            c = f * c + i * z
            if clip is not None:
                c = xp.clip(c, -clip, clip)
            c = p.round(c)
            o = gate(go + c * po) if peep is not None else gate(go)
            h = p.round(o * act(c))
            outs.append(h)
        return outs, h, c

    def lstm(env):
        h, c = env[h0], env[c0]
        if direction != "bidirectional":
            outs, h, c = run_direction(fwd, env[x], h, c, direction == "reverse")
            return (xp.stack(outs, 0) if sequence else xp.expand_dims(h, [0])), h, c
        hidden = fwd[4]
        hf, hb = _split(xp, h, 2, hidden)
        cf, cb = _split(xp, c, 2, hidden)
        outs_f, hf, cf = run_direction(fwd, env[x], hf, cf, False)
        outs_b, hb, cb = run_direction(back, env[x], hb, cb, True)
        if sequence:  # backward outputs realigned with the input steps
            pairs = zip(outs_f, outs_b[::-1], strict=True)
            out = xp.stack([xp.concat([a, b], 1) for a, b in pairs], 0)
        else:
            out = xp.expand_dims(xp.concat([hf, hb], 1), [0])
        return out, xp.concat([hf, hb], 1), xp.concat([cf, cb], 1)

    return lstm


def _lstm_weights(p: Prep, suffix: str) -> tuple:
    w_ih, w_hh, b, hidden = _matrices(
        p, f"weight_ih{suffix}", f"weight_hh{suffix}", [f"bias{suffix}"], 4
    )
    peep = None
    if p.has(f"peephole{suffix}"):
        value = np.asarray(p.const(f"peephole{suffix}"), dtype=np.float32).reshape(3, hidden)
        if np.any(value):
            peep = tuple(p.tensor(v) for v in value)
    return w_ih, w_hh, b, peep, hidden
