"""The one reader of MILBlob weight files (`weights/weight.bin`).

Layout (coremltools mlmodel/src/MILBlob/Blob/StorageFormat.hpp, version 2):
a 64-byte `storage_header` {uint32 count, uint32 version=2, 7 x uint64 reserved}, then for
each blob a 64-byte `blob_metadata` {uint32 sentinel=0xDEADBEEF, uint32 mil_dtype,
uint64 sizeInBytes, uint64 offset (of the data, absolute), uint64 padding_size_in_bits,
4 x uint64 reserved} followed (64-byte aligned) by the data. A program's blob reference
(`blobFileValue.offset`, or `BLOBFILE(..., offset = uint64(N))` in model.mil) points at
the metadata. Sub-byte data is bit-packed LSB-first (see `dtypes.unpack_bits`).

Byte-sized data is returned as a read-only view over an `mmap` of the file, so loading
maps rather than copies; decoding of compressed data happens once, by the caller. Every
size is checked with Python integers before anything is viewed or allocated: the file is
untrusted input.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.dtypes import BLOB_DTYPES, BY_NAME, bf16_to_fp32, unpack_bits
from anemll_spec.mlmodel.limits import check_alloc, element_count

SENTINEL = 0xDEADBEEF
_HEADER = struct.Struct("<II")
_META = struct.Struct("<IIQQQ")


@dataclass(frozen=True)
class BlobMeta:
    dtype: str  # MIL type name
    size: int  # bytes of data
    data_offset: int
    padding_bits: int


class BlobFile:
    """One weight file, memory-mapped for the lifetime of this object."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot map weight file: {exc}") from exc
        if len(self._mm) < 64:
            raise InputError(f"{self.path}: too short to be a weight file (no MILBlob header)")
        self.count, self.version = _HEADER.unpack_from(self._mm, 0)
        self.touched = 0  # bytes read since the last release_pages()
        if self.version != 2:
            raise InputError(f"{self.path}: MILBlob version {self.version}, expected 2")

    def meta(self, offset: int) -> BlobMeta:
        """The metadata record at `offset`, checked against the file."""
        if offset < 64 or offset + 64 > len(self._mm):
            raise InputError(f"{self.path}: blob offset {offset} outside the file (truncated?)")
        sentinel, dtype, size, data_offset, padding = _META.unpack_from(self._mm, offset)
        if sentinel != SENTINEL:
            raise InputError(f"{self.path}: no blob metadata at offset {offset} (bad sentinel)")
        if dtype not in BLOB_DTYPES:
            raise InputError(f"{self.path}: unknown blob data type {dtype} at offset {offset}")
        if data_offset < offset + 64 or data_offset + size > len(self._mm):
            raise InputError(
                f"{self.path}: blob at offset {offset} runs past the end of the file (truncated?)"
            )
        return BlobMeta(BLOB_DTYPES[dtype], size, data_offset, padding)

    def check(self, offset: int, dtype: str, shape: tuple[int, ...]) -> BlobMeta:
        """Check a reference (type and size) without reading the data."""
        meta = self.meta(offset)
        where = f"{self.path}: blob at offset {offset}"
        if meta.dtype != dtype:
            raise InputError(f"{where} holds {meta.dtype}, the program declares {dtype}")
        t = BY_NAME[dtype]
        if t.np_dtype is None:
            raise InputError(f"{where}: blob type {dtype} is not supported")
        count = element_count(shape, where)
        need = -(-count * t.storage_bits // 8)
        if meta.size < need:
            raise InputError(
                f"{where} has {meta.size} bytes, too few for {count:,} {dtype} values "
                f"({need:,} bytes)"
            )
        return meta

    def read(self, offset: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        """The blob at `offset` as an array of MIL type `dtype` and `shape`.

        Byte-sized types come back as read-only memory-mapped views; sub-byte types are
        unpacked to int8/uint8; bf16 is widened to fp32.
        """
        meta = self.check(offset, dtype, shape)
        count = element_count(shape, str(self.path))
        t = BY_NAME[dtype]
        self.touched += meta.size
        raw = np.frombuffer(self._mm, dtype=np.uint8, count=meta.size, offset=meta.data_offset)
        where = f"{self.path}: blob at offset {offset}"
        if t.bits:
            check_alloc(count, where, "unpacking needs")
            return unpack_bits(raw, t.bits, count, t.signed).reshape(shape)
        if dtype == "bf16":
            check_alloc(4 * count, where, "widening bf16 needs")
            return bf16_to_fp32(raw[: 2 * count].view(np.uint16)).reshape(shape)
        itemsize = t.np_dtype.itemsize  # type: ignore[union-attr]
        return raw[: count * itemsize].view(t.np_dtype).reshape(shape)

    def release_pages(self) -> None:
        """Drop the file's pages from this process's resident memory (they are clean, so
        a later read simply faults them back in from the file)."""
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._mm.madvise(mmap.MADV_DONTNEED)
        self.touched = 0

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # views still alive: the map goes with them
            self._mm.close()
