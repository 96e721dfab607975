"""rnn, gru and lstm against step-by-step numpy loops of their definitions (gate orders,
activations, peepholes, clip, reverse and bidirectional), as coremltools' own reference
implementations compute them, fp32 and fp16, numpy and torch; PyTorch's LSTM and GRU agree
where they define the same thing."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

RNG = np.random.default_rng(23)
S, B, IN, H = 4, 2, 3, 5


def rand(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


ACT = {
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "tanh": np.tanh,
    "scaled_tanh": np.tanh,  # alpha = beta = 1
    "relu": lambda v: np.maximum(v, 0),
    "linear": lambda v: v,
    "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0, 1),
    "sigmoid_hard": lambda v: np.clip(0.2 * v + 0.5, 0, 1),
}


def _steps(x, reverse):
    return x[::-1] if reverse else x


def _out(outs, sequence):
    return (np.stack(outs) if sequence else outs[-1][None]), outs[-1]


def rnn_ref(x, h, w_ih, w_hh, b, reverse, act, sequence):
    outs = []
    for xt in _steps(x, reverse):
        h = ACT[act](xt @ w_ih.T + h @ w_hh.T + b)
        outs.append(h)
    return _out(outs, sequence)


def gru_ref(x, h, w_ih, w_hh, b, reverse, gate, act, sequence, after=False, b_in=None):
    """Gates in the order r, o, z. Reset before the product: o = act(W_o x + R_o (r h) +
    b_o); reset after (iOS18, PyTorch's GRU): o = act(W_o x + b_io + r (R_o h + b_ho))."""
    wr, wo, wz = np.split(w_ih, 3)
    rr, ro, rz = np.split(w_hh, 3)
    br, bo, bz = np.split(b, 3)
    ir, io, iz = np.split(b_in if b_in is not None else np.zeros(3 * H), 3)
    outs = []
    for xt in _steps(x, reverse):
        r = ACT[gate](xt @ wr.T + ir + h @ rr.T + br)
        z = ACT[gate](xt @ wz.T + iz + h @ rz.T + bz)
        if after:
            o = ACT[act](xt @ wo.T + io + r * (h @ ro.T + bo))
        else:
            o = ACT[act](xt @ wo.T + (r * h) @ ro.T + bo)
        h = (1 - z) * o + z * h
        outs.append(h)
    return _out(outs, sequence)


def lstm_dir(x, h, c, w_ih, w_hh, b, peep, reverse, acts, clip):
    """Gates i, f, o, z; the i and f peepholes read c_{t-1}, the o one c_t."""
    wi, wf, wo, wz = np.split(w_ih, 4)
    ri, rf, ro, rz = np.split(w_hh, 4)
    bi, bf, bo, bz = np.split(b, 4)
    pi, pf, po = np.split(peep, 3)
    gate, cell, out = (ACT[a] for a in acts)
    outs = []
    for xt in _steps(x, reverse):
        i = gate(xt @ wi.T + h @ ri.T + bi + c * pi)
        f = gate(xt @ wf.T + h @ rf.T + bf + c * pf)
        z = cell(xt @ wz.T + h @ rz.T + bz)
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o = gate(xt @ wo.T + h @ ro.T + bo + c * po)
        h = o * out(c)
        outs.append(h)
    return outs, h, c


def lstm_ref(x, h, c, fwd, back, direction, acts, clip, sequence):
    if direction != "bidirectional":
        outs, h, c = lstm_dir(x, h, c, *fwd, direction == "reverse", acts, clip)
        return (np.stack(outs) if sequence else h[None]), h, c
    of, hf, cf = lstm_dir(x, h[:, :H], c[:, :H], *fwd, False, acts, clip)
    ob, hb, cb = lstm_dir(x, h[:, H:], c[:, H:], *back, True, acts, clip)
    if sequence:  # backward outputs aligned with the input steps
        out = np.stack([np.concatenate([a, b], 1) for a, b in zip(of, ob[::-1], strict=True)])
    else:
        out = np.concatenate([hf, hb], 1)[None]
    return out, np.concatenate([hf, hb], 1), np.concatenate([cf, cb], 1)


X = rand(S, B, IN, scale=1.0)
H0, C0 = rand(B, H), rand(B, H)
H02, C02 = rand(B, 2 * H), rand(B, 2 * H)
W1 = (rand(H, IN), rand(H, H), rand(H))
W3 = (rand(3 * H, IN), rand(3 * H, H), rand(3 * H), rand(3 * H))
W4 = (rand(4 * H, IN), rand(4 * H, H), rand(4 * H), rand(3 * H))
W4B = (rand(4 * H, IN), rand(4 * H, H), rand(4 * H), rand(3 * H))


def held(ws, f):
    return [w.astype(f).astype(np.float64) for w in ws]


def const(ws, f):
    return [w.astype(f) for w in ws]


def _rnn_case(name, reverse, act, sequence):
    def build(v, f):
        w_ih, w_hh, b = const(W1, f)
        return mb.rnn(
            x=v["x"],
            initial_h=v["h"],
            weight_ih=w_ih,
            weight_hh=w_hh,
            bias=b,
            direction="reverse" if reverse else "forward",
            output_sequence=sequence,
            activation=act,
        )

    return Case(
        name,
        {"x": X, "h": H0},
        build,
        lambda v, f: rnn_ref(v["x"], v["h"], *held(W1, f), reverse, act, sequence),
        tol=1e-5,
        tol16=3e-2,
    )


def _gru_case(name, reverse, gate, act, sequence, after=False):
    def build(v, f):
        w_ih, w_hh, b, b_in = const(W3, f)
        kw = dict(reset_after=True, input_bias=b_in) if after else {}
        return mb.gru(
            x=v["x"],
            initial_h=v["h"],
            weight_ih=w_ih,
            weight_hh=w_hh,
            bias=b,
            direction="reverse" if reverse else "forward",
            output_sequence=sequence,
            recurrent_activation=gate,
            activation=act,
            **kw,
        )

    def expect(v, f):
        w_ih, w_hh, b, b_in = held(W3, f)
        return gru_ref(
            v["x"],
            v["h"],
            w_ih,
            w_hh,
            b,
            reverse,
            gate,
            act,
            sequence,
            after,
            b_in if after else None,
        )

    return Case(name, {"x": X, "h": H0}, build, expect, tol=1e-5, tol16=3e-2)


def _lstm_case(name, direction, acts, clip, sequence, peephole=True):
    bidir = direction == "bidirectional"

    def build(v, f):
        w_ih, w_hh, b, p = const(W4, f)
        kw = {}
        if bidir:
            bw_ih, bw_hh, bb, bp = const(W4B, f)
            kw = dict(
                weight_ih_back=bw_ih,
                weight_hh_back=bw_hh,
                bias_back=bb,
                peephole_back=bp if peephole else None,
            )
        if clip is not None:
            kw["clip"] = f(clip)
        return mb.lstm(
            x=v["x"],
            initial_h=v["h"],
            initial_c=v["c"],
            weight_ih=w_ih,
            weight_hh=w_hh,
            bias=b,
            peephole=p if peephole else None,
            direction=direction,
            output_sequence=sequence,
            recurrent_activation=acts[0],
            cell_activation=acts[1],
            activation=acts[2],
            **kw,
        )

    def expect(v, f):
        fw = held(W4, f)
        bw = held(W4B, f)
        if not peephole:
            fw[3], bw[3] = np.zeros(3 * H), np.zeros(3 * H)
        return lstm_ref(v["x"], v["h"], v["c"], fw, bw, direction, acts, clip, sequence)

    inputs = {"x": X, "h": H02 if bidir else H0, "c": C02 if bidir else C0}
    return Case(name, inputs, build, expect, tol=1e-5, tol16=3e-2)


DEFAULT_ACTS = ("sigmoid", "tanh", "tanh")
CASES = [
    _rnn_case("rnn_forward_sequence", False, "tanh", True),
    _rnn_case("rnn_reverse_last", True, "relu", False),
    _rnn_case("rnn_sigmoid_hard", False, "sigmoid_hard", True),
    _gru_case("gru_forward_sequence", False, "sigmoid", "tanh", True),
    _gru_case("gru_reverse_swapped_activations", True, "tanh", "sigmoid", True),
    _gru_case("gru_last_step", False, "hard_sigmoid", "linear", False),
    _gru_case("gru_reset_after", False, "sigmoid", "tanh", True, after=True),
    _lstm_case("lstm_peephole_clip", "forward", DEFAULT_ACTS, 0.7, True),
    _lstm_case("lstm_reverse_no_peephole", "reverse", DEFAULT_ACTS, None, True, peephole=False),
    _lstm_case(
        "lstm_other_activations", "forward", ("hard_sigmoid", "relu", "scaled_tanh"), None, False
    ),
    _lstm_case("lstm_linear_cell", "forward", ("sigmoid", "linear", "tanh"), 2.0, True),
    _lstm_case("lstm_bidirectional_sequence", "bidirectional", DEFAULT_ACTS, None, True),
    _lstm_case(
        "lstm_bidirectional_last", "bidirectional", DEFAULT_ACTS, None, False, peephole=False
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_recurrent")


@pytest.mark.torch
def test_references_agree_with_torch_lstm_and_gru():
    """The lstm reference (bidirectional, no peephole) is PyTorch's LSTM with gates
    reordered (i, f, g, o -> i, f, o, z) and biases summed; gru with reset_after is
    PyTorch's GRU (r, z, n -> r, o, z)."""
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(IN, H, bidirectional=True)
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in lstm.state_dict().items()}

    def ifoz(w):
        i, f, g, o = np.split(w, 4)
        return np.concatenate([i, f, o, g])

    fwd = [
        ifoz(sd["weight_ih_l0"]),
        ifoz(sd["weight_hh_l0"]),
        ifoz(sd["bias_ih_l0"] + sd["bias_hh_l0"]),
        np.zeros(3 * H),
    ]
    back = [
        ifoz(sd["weight_ih_l0_reverse"]),
        ifoz(sd["weight_hh_l0_reverse"]),
        ifoz(sd["bias_ih_l0_reverse"] + sd["bias_hh_l0_reverse"]),
        np.zeros(3 * H),
    ]
    x = X.astype(np.float64)
    h0 = np.stack([H02[:, :H], H02[:, H:]]).astype(np.float32)
    c0 = np.stack([C02[:, :H], C02[:, H:]]).astype(np.float32)
    want, (hn, cn) = lstm(torch.from_numpy(X), (torch.from_numpy(h0), torch.from_numpy(c0)))
    out, h, c = lstm_ref(
        x,
        H02.astype(np.float64),
        C02.astype(np.float64),
        fwd,
        back,
        "bidirectional",
        DEFAULT_ACTS,
        None,
        True,
    )
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        h, np.concatenate([hn[0].detach().numpy(), hn[1].detach().numpy()], 1), rtol=1e-5, atol=1e-6
    )

    gru = torch.nn.GRU(IN, H)
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in gru.state_dict().items()}

    def roz(w):
        r, z, n = np.split(w, 3)
        return np.concatenate([r, n, z])

    want, _ = gru(torch.from_numpy(X), torch.from_numpy(H0[None]))
    out, _ = gru_ref(
        x,
        H0.astype(np.float64),
        roz(sd["weight_ih_l0"]),
        roz(sd["weight_hh_l0"]),
        roz(sd["bias_hh_l0"]),
        False,
        "sigmoid",
        "tanh",
        True,
        after=True,
        b_in=roz(sd["bias_ih_l0"]),
    )
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-5, atol=1e-6)
