"""The one table of Core ML data types: MIL program types, weight-blob types, feature types.

A saved model names a data type in four vocabularies: the MIL program's `DataType` enum
(proto) or its text spelling (`fp16`, `uint6`, ...) in model.mil, the weight file's
`BlobDataType`, the model description's `ArrayFeatureType` (inputs and outputs), and a
compiled model's metadata.json (`Float16`). Each maps here to one `MilType` and to one numpy
dtype name, so every reader agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MilType:
    name: str  # MIL spelling: "fp16", "int4", ...
    np_dtype: np.dtype | None  # numpy storage dtype of a decoded value (None: not decodable)
    bits: int = 0  # sub-byte width (1, 2, 3, 4, 6), 0 for byte-sized types
    signed: bool = False

    @property
    def is_float(self) -> bool:
        return self.name in FLOAT_NAMES

    @property
    def storage_bits(self) -> int:
        """Bits one element takes in a weight file or immediate value."""
        if self.bits:
            return self.bits
        if self.name == "bf16":
            return 16
        return 8 * self.np_dtype.itemsize if self.np_dtype is not None else 0


FLOAT_NAMES = frozenset(("fp16", "fp32", "fp64", "bf16"))  # MIL float type names


def _t(name: str, dt, bits: int = 0, signed: bool = False) -> MilType:
    return MilType(name, None if dt is None else np.dtype(dt), bits, signed)


# MIL_pb2.DataType values
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

# FeatureTypes_pb2.ArrayFeatureType.ArrayDataType (model inputs/outputs) -> numpy name
FEATURE_ARRAY_DTYPES: dict[int, str] = {
    65552: "float16",
    65568: "float32",
    65600: "float64",
    131104: "int32",
    131080: "int8",
}

# metadata.json "dataType" of a compiled model's features (lower-cased) -> numpy name
SCHEMA_DTYPES: dict[str, str] = {
    "float16": "float16",
    "float32": "float32",
    "float": "float32",
    "double": "float64",
    "float64": "float64",
    "int32": "int32",
    "int8": "int8",
}


# Outputs that are host values, not arrays (a classifier's label and its probabilities, as
# Core ML returns them: str, or int for int64 labels, and a dict): MIL type -> the name a
# model's description gives them. No numpy dtype has these names.
VALUE_DTYPES: dict[str, str] = {"string": "str", "dict": "dict"}


def np_name(mil_name: str) -> str | None:
    """numpy dtype name of a MIL type's values as a model's caller sees them (None: none)."""
    t = BY_NAME.get(mil_name)
    if t is None or t.np_dtype is None:
        return None
    return "float16" if t.name == "fp16" else t.np_dtype.name


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
