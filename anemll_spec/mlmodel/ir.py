"""The program IR: what a saved ML Program holds, as plain records.

Both readers (the protobuf of an .mlpackage, the model.mil text of an .mlmodelc) produce
these, and everything downstream (inspect, the executor, its lowering passes) reads only
these. Nothing here computes: an `Op` carries resolved arguments (a variable name, or a
constant value, weights left in their file as a `BlobRef` until asked for) and declared
output types, so a lowering step can rewrite the op list before kernels are prepared.

Control flow: an op may own nested `Block`s (`cond`: the true and the false branch;
`while_loop`: the condition and the body). A block has its own inputs (the loop variables
of while_loop; none for cond), its ops, and the names it returns; its ops may also read any
variable visible where the op stands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from anemll_spec.mlmodel.blob import BlobFile


@dataclass(frozen=True)
class VarType:
    """Declared type of a variable: MIL dtype name and shape (None: a dimension not fixed)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    is_state: bool = False

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        fixed = tuple(d for d in self.shape if d is not None)
        return fixed if len(fixed) == len(self.shape) else None


@dataclass(frozen=True)
class BlobRef:
    """A constant stored in a weight file, decoded only when asked for (and not kept), so
    compressed weights are never all unpacked at once while a program is prepared."""

    blob: BlobFile
    offset: int
    dtype: str
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        return self.blob.read(self.offset, self.dtype, self.shape)


def materialize(value: Any) -> Any:
    return value.load() if isinstance(value, BlobRef) else value


@dataclass(frozen=True)
class Arg:
    """One argument binding: a variable reference or an inline constant value."""

    ref: str | None = None
    value: Any = None
    dtype: str | None = None  # MIL dtype of an inline value

    def type_of(self) -> tuple[str | None, tuple[int, ...] | None]:
        """(MIL dtype, shape) of an inline value (a reference has none of its own)."""
        if self.ref is not None:
            return None, None
        if isinstance(self.value, BlobRef):
            return self.value.dtype, self.value.shape
        if isinstance(self.value, str):
            return "string", ()
        return self.dtype, tuple(np.shape(self.value))


@dataclass
class Block:
    inputs: list[VarType]
    ops: list[Op]
    outputs: list[str]


@dataclass
class Op:
    index: int  # position in its block
    type: str
    name: str
    inputs: dict[str, list[Arg]]
    outputs: list[VarType]
    attrs: dict[str, Any] = field(default_factory=dict)  # "val" of const ops, etc.
    blocks: list[Block] = field(default_factory=list)  # nested blocks (control flow)

    def where(self) -> str:
        return f"op {self.index} '{self.name}' ({self.type})"

    def refs(self) -> Iterator[str]:
        """Every variable this op reads, those read inside its nested blocks included
        (variables defined inside a block are not reads of the op)."""
        for args in self.inputs.values():
            for a in args:
                if a.ref is not None:
                    yield a.ref
        for block in self.blocks:
            yield from block_reads(block)


def block_reads(block: Block) -> Iterator[str]:
    """Names a block reads from outside itself."""
    defined = {v.name for v in block.inputs}
    for op in block.ops:
        for r in op.refs():
            if r not in defined:
                yield r
        defined.update(o.name for o in op.outputs)
    for name in block.outputs:
        if name not in defined:
            yield name


def undefined_reads(fn: Function) -> Iterator[tuple[Op, str]]:
    """Each (op, name) where an op reads a variable nothing defined before it: a cycle or
    ops out of order, which a saved program cannot mean (coremltools writes ops in
    order). Found at load, so `inspect` and the executor refuse it alike."""

    def visit(ops: list[Op], visible: set[str]) -> Iterator[tuple[Op, str]]:
        visible = set(visible)
        for op in ops:
            for args in op.inputs.values():
                yield from ((op, a.ref) for a in args if a.ref and a.ref not in visible)
            for block in op.blocks:
                inner = visible | {v.name for v in block.inputs}
                yield from visit(block.ops, inner)
                inner |= {o.name for b_op in walk(block.ops) for o in b_op.outputs}
                yield from ((op, name) for name in block.outputs if name not in inner)
            visible.update(o.name for o in op.outputs)

    yield from visit(fn.ops, {v.name for v in fn.inputs})


def walk(ops: list[Op]) -> Iterator[Op]:
    """Every op, those inside nested blocks included, in program order."""
    for op in ops:
        yield op
        for block in op.blocks:
            yield from walk(block.ops)


@dataclass
class Function:
    name: str
    opset: str
    inputs: list[VarType]  # includes states (is_state=True)
    outputs: list[str]
    ops: list[Op]


@dataclass
class Program:
    """A parsed ML Program: its functions and what the model file says around them."""

    functions: dict[str, Function]
    default_function: str  # the function Core ML runs when none is named
    spec_version: int | None = None
    input_order: dict[str, list[str]] = field(default_factory=dict)  # function -> names

    def function(self, name: str | None, where: str) -> Function:
        from anemll_spec.errors import InputError

        name = name or self.default_function
        if name not in self.functions:
            raise InputError(
                f"{where}: no function '{name}' (has: {', '.join(sorted(self.functions))})"
            )
        return self.functions[name]
