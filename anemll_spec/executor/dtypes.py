"""MIL data types: proto enum values, names, numpy storage types and sub-byte widths."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MilType:
    name: str  # MIL spelling: "fp16", "int4", ...
    np_dtype: np.dtype | None  # numpy storage dtype of a decoded value (None: string)
    bits: int = 0  # sub-byte width (1, 2, 3, 4, 6), 0 for byte-sized types
    signed: bool = False

    @property
    def is_float(self) -> bool:
        return self.name in FLOAT_NAMES


FLOAT_NAMES = frozenset(("fp16", "fp32", "fp64", "bf16"))  # MIL float type names


def _t(name: str, dt, bits: int = 0, signed: bool = False) -> MilType:
    return MilType(name, None if dt is None else np.dtype(dt), bits, signed)


# coremltools.proto.MIL_pb2.DataType values
BY_PROTO: dict[int, MilType] = {
    1: _t("bool", np.bool_),
    2: _t("string", None),
    10: _t("fp16", np.float16),
    11: _t("fp32", np.float32),
    12: _t("fp64", np.float64),
    13: _t("bf16", np.float32),  # decoded to fp32 (exact)
    21: _t("int8", np.int8, signed=True),
    22: _t("int16", np.int16, signed=True),
    23: _t("int32", np.int32, signed=True),
    24: _t("int64", np.int64, signed=True),
    25: _t("int4", np.int8, 4, True),
    31: _t("uint8", np.uint8),
    32: _t("uint16", np.uint16),
    33: _t("uint32", np.uint32),
    34: _t("uint64", np.uint64),
    35: _t("uint4", np.uint8, 4),
    36: _t("uint2", np.uint8, 2),
    37: _t("uint1", np.uint8, 1),
    38: _t("uint6", np.uint8, 6),
    39: _t("uint3", np.uint8, 3),
    40: _t("fp8e4m3fn", None),
    41: _t("fp8e5m2", None),
}

BY_NAME: dict[str, MilType] = {t.name: t for t in BY_PROTO.values()}
# Spellings used by ops' string parameters (cast dtype, output_dtype)
BY_NAME.update({"float16": BY_NAME["fp16"], "float32": BY_NAME["fp32"], "bool_": BY_NAME["bool"]})

# MILBlob BlobDataType (mlmodel/src/MILBlob/Blob/BlobDataType.hpp) -> MIL type name
BLOB_DTYPES: dict[int, str] = {
    1: "fp16",
    2: "fp32",
    3: "uint8",
    4: "int8",
    5: "bf16",
    6: "int16",
    7: "uint16",
    8: "int4",
    9: "uint1",
    10: "uint2",
    11: "uint4",
    12: "uint3",
    13: "uint6",
    14: "int32",
    15: "uint32",
    16: "fp8e4m3fn",
    17: "fp8e5m2",
}


def unpack_bits(packed: np.ndarray, bits: int, count: int, signed: bool) -> np.ndarray:
    """Unpack `count` `bits`-wide integers packed LSB-first (MILBlob / constexpr layout).

    Element i occupies bits [i*bits, (i+1)*bits) of the little-endian bit stream, its least
    significant bit first; signed values are two's complement. Works a group of
    lcm(bits, 8) bits at a time, so temporaries stay the size of the output.
    """
    raw = np.asarray(packed).reshape(-1).view(np.uint8)
    group_bits = bits * 8 // math.gcd(bits, 8)
    group_bytes, per_group = group_bits // 8, group_bits // bits
    groups = -(-count // per_group)
    if raw.size * 8 < count * bits:
        raise ValueError(f"{raw.size} bytes hold fewer than {count} x {bits}-bit values")
    need = groups * group_bytes
    if raw.size < need:  # the last group is partial: pad with zero bytes
        raw = np.concatenate([raw, np.zeros(need - raw.size, np.uint8)])
    chunk = raw[:need].reshape(groups, group_bytes).astype(np.uint32)
    word = chunk[:, 0].copy()
    for i in range(1, group_bytes):
        word |= chunk[:, i] << np.uint32(8 * i)
    shifts = (np.arange(per_group, dtype=np.uint32) * bits).astype(np.uint32)
    values = ((word[:, None] >> shifts) & np.uint32((1 << bits) - 1)).reshape(-1)[:count]
    if signed:
        out = values.astype(np.int16)
        out[out >= (1 << (bits - 1))] -= 1 << bits
        return out.astype(np.int8)
    return values.astype(np.uint8)


def bf16_to_fp32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) to float32, exactly."""
    return (np.asarray(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
