"""The model.mil text of a compiled model (.mlmodelc), as the IR (`ir.Program`).

The text is what the Core ML compiler writes, one statement per line, e.g.

    program(1.3)
    [buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]
    {
        func main<ios18>(tensor<fp16, [1, 1, 4096]> x, state<tensor<fp16, [1, 8]>> k) {
            tensor<fp16, [64, 4096, 1, 1]> w = const()[name = string("w"), val = tensor<fp16,
                [64, 4096, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"),
                offset = uint64(64)))];
            fp16 eps = const()[name = string("eps"), val = fp16(0x1p-17)];
            tensor<fp16, [1, 64, 1, 1]> y = conv(weight = w, x = x, ...)[name = string("y")];
        } -> (y);
    }

A statement is `TYPE NAME = OP(ARGS)[ATTRS];` (several outputs: a comma-separated or
parenthesised list of `TYPE NAME`; none: `OP(...)[...];`). An argument is a variable
name, a literal `TYPE(VALUE)` (floats may be hexadecimal, `0x1.8p-3`), a weight
`TYPE(BLOBFILE(path = ..., offset = ...))`, or a parenthesised list of these. As in the
protobuf, a const op's value is its `val` attribute and the other attributes of an op
(iOS16 constexpr ops) are its parameters. Nested blocks (control flow) are refused: we
have no compiled sample of their text form to read them against.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.dtypes import BY_NAME, MilType
from anemll_spec.mlmodel.ir import Arg, Function, Op, Program, VarType
from anemll_spec.mlmodel.limits import as_array, check_alloc, element_count, fixed_shape
from anemll_spec.mlmodel.miltokens import Tokens
from anemll_spec.mlmodel.protoread import WeightFiles

_SCALARS = frozenset(BY_NAME) | {"string"}


# The C escapes a string of model.mil may hold (the text is UTF-8: any other character,
# non-ASCII included, stands for itself).
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|(.)?)", re.S)
_SIMPLE = {'"': '"', "'": "'", "\\": "\\", "?": "?", "a": "\a", "b": "\b", "f": "\f"}
_SIMPLE |= {"n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def unescape(body: str, where: str) -> str:
    r"""The value of a string literal's body (between its quotes); InputError at `where`
    (file:line) for a \x, \u or \U escape without its digits or naming no character. An
    escape C does not know (\q) stands for itself, backslash included, as Python's
    unicode_escape (what this read before) keeps it: a name Apple's compiler wrote so
    must not make the whole model unreadable."""

    def one(m: re.Match) -> str:
        esc = m.group()
        if m.group(1) is None and len(esc) > 1:  # \xHH, \uHHHH, \UHHHHHHHH or octal
            code = int(esc[2:], 16) if esc[1] in "xuU" else int(esc[1:], 8)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise InputError(f"{where}: bad escape {esc} in a string (no such character)")
            return chr(code)
        if m.group(1) in _SIMPLE:
            return _SIMPLE[m.group(1)]
        if m.group(1) is None or m.group(1) not in "xuU":
            return esc
        shown = esc if esc.isprintable() else repr(esc)
        raise InputError(f"{where}: bad escape {shown} in a string")

    return _ESCAPE.sub(one, body) if "\\" in body else body


class _Type:
    def __init__(self, dtype: str, shape: tuple[int | None, ...] | None, state: bool = False):
        self.dtype = dtype
        self.shape = shape  # None: not a tensor or scalar (list, dict, tuple)
        self.state = state


class _Parser:
    def __init__(self, text: str, where: Path, weights: WeightFiles):
        self.t = Tokens(text, where)
        self.where = where
        self.weights = weights

    # -- types -------------------------------------------------------------------------
    def type(self) -> _Type:
        t = self.t
        word = t.name()
        if word == "state":
            t.expect("<")
            inner = self.type()
            t.expect(">")
            return _Type(inner.dtype, inner.shape, state=True)
        if word == "tensor":
            t.expect("<")
            dtype = t.name()
            t.expect(",")
            t.expect("[")
            dims: list[int | None] = []
            while t.peek() != "]":
                tok = t.next()
                if t.kind(-1) == "num" and re.fullmatch(r"\d+", tok):
                    dims.append(int(tok))
                elif tok in ("?",) or t.kind(-1) == "id":
                    dims.append(None)  # not fixed (symbolic or flexible)
                else:
                    raise t.fail(f"bad dimension {tok!r}")
                if t.peek() == ",":
                    t.next()
            t.expect("]")
            t.expect(">")
            return _Type(dtype, tuple(dims))
        if word in _SCALARS:
            return _Type(word, ())
        if t.peek() == "<":  # list<...>, dict<...>, tuple<...>: read past it
            t.skip_balanced()
        return _Type(word, None)

    # -- values ------------------------------------------------------------------------
    def literal(self) -> Any:
        t = self.t
        if t.peek() == "[":
            t.next()
            return t.items("]", self.literal)
        kind, tok = t.kind(), t.next()
        if kind == "str":
            return unescape(tok[1:-1], f"{self.where}:{t.toks[t.i - 1][2]}")
        if kind == "num":
            return tok
        if tok in ("true", "false"):
            return tok == "true"
        if kind == "id" and t.peek() in ("(", "<"):  # a typed scalar nested in a list
            t.i -= 1
            return self.typed_value()[0]
        raise t.fail(f"unexpected {tok!r} in a value")

    def typed_value(self) -> tuple[Any, str]:
        """`TYPE(LITERAL)` or `TYPE(BLOBFILE(...))`: (value, MIL dtype)."""
        t = self.t
        ty = self.type()
        t.expect("(")
        if t.peek() == "BLOBFILE":
            t.next()
            fields = self._fields()
            t.expect(")")
            return self._blob(ty, fields), ty.dtype
        if ty.shape is None:  # a value of a type we do not read (dict, tuple...): keep as text
            start = t.i
            depth = 1
            while depth:
                tok = t.next()
                depth += tok == "("
                depth -= tok == ")"
            return " ".join(tok for _, tok, _ in t.toks[start : t.i - 1]), ty.dtype
        raw = self.literal() if t.peek() != ")" else []
        t.expect(")")
        return self._array(ty, raw), ty.dtype

    def _fields(self) -> dict[str, Any]:
        t = self.t
        t.expect("(")

        def field() -> tuple[str, Any]:
            key = t.name()
            t.expect("=")
            return key, self.typed_value()[0]

        return dict(t.items(")", field))

    def _blob(self, ty: _Type, fields: dict[str, Any]) -> Any:
        where = f"{self.where}:{self.t.toks[self.t.i - 1][2]}"
        mil = BY_NAME.get(ty.dtype)
        if mil is None or ty.shape is None:
            raise InputError(f"{where}: weight of unknown type {ty.dtype}")
        try:
            offset = int(np.asarray(fields["offset"]).reshape(()))
        except (KeyError, ValueError, TypeError):
            raise InputError(f"{where}: BLOBFILE without a valid offset") from None
        return self.weights.ref(fields.get("path"), offset, mil, ty.shape, where)

    def _array(self, ty: _Type, raw: Any) -> Any:
        where = f"{self.where}:{self.t.toks[self.t.i - 1][2]}"
        flat = _flatten(raw)
        if ty.dtype == "string":
            vals = [str(v) for v in flat]
            return vals[0] if ty.shape == () and len(vals) == 1 else np.array(vals, dtype=object)
        mil = BY_NAME.get(ty.dtype)
        if mil is None or mil.np_dtype is None or ty.shape is None:
            raise InputError(f"{where}: values of type {ty.dtype} are not supported")
        shape = fixed_shape(ty.shape, where)
        count = element_count(shape, where)
        vals = [_number(v, mil, where) for v in flat]
        if len(vals) == 1 and count != 1:  # one value for the whole shape
            check_alloc(count * mil.np_dtype.itemsize, where, "this constant needs")
            return np.full(shape, as_array(vals, mil.np_dtype, mil.name, where)[0])
        if len(vals) != count:
            raise InputError(f"{where}: {len(vals)} values for a shape of {count} elements")
        arr = as_array(vals, mil.np_dtype, mil.name, where).reshape(shape)
        return arr if shape else arr[()]

    def arg(self) -> list[Arg]:
        t = self.t
        if t.peek() == "(":
            t.next()
            return [a for group in t.items(")", self.arg) for a in group]
        if t.kind() == "id" and t.peek(1) not in ("(", "<"):
            return [Arg(ref=t.next())]
        value, dtype = self.typed_value()
        return [Arg(value=value, dtype=dtype)]

    def bindings(self, close: str) -> dict[str, list[Arg]]:
        t = self.t

        def binding() -> tuple[str, list[Arg]]:
            key = t.name()
            t.expect("=")
            return key, self.arg()

        return dict(t.items(close, binding))

    # -- statements --------------------------------------------------------------------
    def decl(self) -> VarType:
        ty = self.type()
        name = self.t.name()
        return VarType(name, ty.dtype, ty.shape or (), is_state=ty.state)

    def statement(self, index: int) -> Op:
        t = self.t
        outs: list[VarType] = []
        if t.peek() == "(":
            t.next()
            outs = t.items(")", self.decl)
            t.expect("=")
        elif not (t.kind() == "id" and t.peek(1) == "("):
            outs.append(self.decl())
            while t.peek() == ",":
                t.next()
                outs.append(self.decl())
            t.expect("=")
        op_type = t.name()
        t.expect("(")
        args = self.bindings(")")
        attrs_raw: dict[str, list[Arg]] = {}
        if t.peek() == "[":
            t.next()
            attrs_raw = self.bindings("]")
        if t.peek() == "{":
            raise t.fail(
                f"op '{op_type}': control flow (nested blocks) in model.mil is not supported"
            )
        t.expect(";")
        name = outs[0].name if outs else f"{op_type}_{index}"
        attrs: dict[str, Any] = {}
        for key, bound in attrs_raw.items():
            if key == "name":
                if bound and bound[0].ref is None:
                    name = str(bound[0].value)
                continue
            if op_type == "const" or key in args:
                if len(bound) != 1 or bound[0].ref is not None:
                    raise t.fail(f"op '{name}': attribute {key} must be one value")
                attrs[key] = (bound[0].value, bound[0].dtype)
            else:  # as in the protobuf: iOS16 constexpr ops' parameters are attributes
                args[key] = bound
        return Op(index, op_type, name, args, outs, attrs)

    def function(self) -> Function:
        t = self.t
        t.expect("func")
        name = t.name()
        opset = ""
        if t.peek() == "<":
            t.next()
            opset = t.name()
            t.expect(">")
        t.expect("(")
        inputs = t.items(")", self.decl)
        if t.peek() == "[":  # function attributes (flexible shapes...): not needed to run
            t.skip_balanced()
        t.expect("{")
        ops: list[Op] = []
        while t.peek() != "}":
            ops.append(self.statement(len(ops)))
        t.next()
        t.expect("->")
        t.expect("(")
        outputs = t.items(")", t.name)
        t.expect(";")
        return Function(name, opset, inputs, outputs, ops)

    def program(self) -> dict[str, Function]:
        t = self.t
        if t.peek() == "program":
            t.next()
            if t.peek() == "(":
                t.skip_balanced()
        if t.peek() == "[":
            t.skip_balanced()
        if t.peek() != "{" and t.peek() != "func":
            raise t.fail("no function found in model.mil")
        braced = t.peek() == "{"
        if braced:
            t.next()
        functions: dict[str, Function] = {}
        while t.peek() == "func":
            fn = self.function()
            functions[fn.name] = fn
        if not functions:
            raise t.fail("no function found in model.mil")
        if braced:
            t.expect("}")
        return functions


def _flatten(raw: Any) -> list:
    if isinstance(raw, list):
        out = []
        for r in raw:
            out += _flatten(r)
        return out
    return [raw]


def _number(v: Any, mil: MilType, where: str) -> Any:
    if isinstance(v, bool | int | float | np.generic):
        return v
    s = str(v)
    try:
        if mil.np_dtype is not None and mil.np_dtype.kind == "f":
            return float.fromhex(s) if "x" in s.lower() else float(s)
        if mil.name == "bool":
            return s.lower() in ("true", "1")
        return int(s, 0) if "x" in s.lower() else int(s)
    except ValueError:
        raise InputError(f"{where}: {s!r} is not a {mil.name} value") from None


def read_program(
    text: str,
    where: Path,
    weights: WeightFiles,
    spec_version: int | None,
    input_order: list[str] | None = None,
) -> Program:
    """The functions of a model.mil text (the default is `main`, else the first)."""
    try:
        functions = _Parser(text, where, weights).program()
    except RecursionError:  # the parser descends once per bracket: a hostile nesting
        raise InputError(f"{where}: brackets nested too deeply to be a model") from None
    default = "main" if "main" in functions else next(iter(functions))
    order = {default: list(input_order)} if input_order else {}
    return Program(functions, default, spec_version, order)
