"""Build any model a spec declares as a Core ML ML Program (.mlpackage), cached.

    built = build(case.model)            # -> Built(path, key, weight_bytes, flops, ...)
    est = estimate(case.model)           # analytic sizes and ANE warnings, builds nothing

One module per family (lm_head, ffn, attention, matmul, external) describes the
graph; `graph` assembles it with coremltools' MIL builder; `weights` makes seeded
weights; `compress` applies coremltools' compression per weight (with the fast,
exact k-means of `palettize`); `cache` publishes packages atomically; `inspect`
reads any saved model back.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from anemll_spec.build.cache import BUILDER_VERSION, cache_key
from anemll_spec.build.checks import (
    cache_folder,
    check_call_memory,
    check_compile_temp,
    check_disk,
    check_memory,
    check_plan_disk,
    disk_filled,
    new_build_folder,
    writable,
)
from anemll_spec.build.records import Built, Estimate
from anemll_spec.errors import InputError
from anemll_spec.paths import default_cache_dir
from anemll_spec.vocab import TARGET_VERSION

if TYPE_CHECKING:  # the spec (pydantic) is imported where a model is used: `cache list`
    # and every other reader of build.cache start without it
    from anemll_spec.spec.compression import Palettize, Quantize
    from anemll_spec.spec.families import ModelBase

__all__ = [
    "BUILDER_VERSION",
    "Built",
    "Estimate",
    "build",
    "preflight",
    "preflight_disk",
    "estimate",
    "kmeans_groups",
    "default_cache_dir",
    "cache_key",
]

ANE_MAX_DIM = 16384
_PAD = 64  # blob data is 64-byte aligned in weight.bin


def plan_of(model: ModelBase):
    import importlib

    from anemll_spec.spec.families import BUILT_FAMILIES

    family = model.family
    if family not in BUILT_FAMILIES:
        raise InputError(f"model.family: cannot build family {family!r}")
    return importlib.import_module(f"anemll_spec.build.{family}").plan(model)


def _pad(n: int) -> int:
    return -(-n // _PAD) * _PAD


def _blob_sizes(w, itemsize: int, cfg: Palettize | Quantize | None) -> list[tuple[int, int]]:
    """(bytes, elements) of each value one weight becomes, in stock coremltools layouts.

    Values of fewer than 10 elements are stored inline in the proto, not in weight.bin.
    """
    from anemll_spec.spec.compression import Palettize

    n = math.prod(w.shape)
    if cfg is None:
        return [(n * itemsize, n)]
    if isinstance(cfg, Palettize):
        groups = 1
        if cfg.granularity == "per_grouped_channel":
            groups = w.out_channels // cfg.group_size
        lut = groups * (1 << cfg.nbits)
        return [(-(-n * cfg.nbits // 8), n), (lut * itemsize, lut)]
    bits = 8 if cfg.dtype == "int8" else 4
    scales = w.out_channels
    if cfg.granularity == "per_block":
        scales = w.out_channels * (w.in_channels // cfg.block_size)
    return [(-(-n * bits // 8), n), (scales * itemsize, scales)]


def estimate(model: ModelBase) -> Estimate:
    """Weight bytes, FLOPs, peak build memory and ANE warnings, without building."""
    from anemll_spec.build.compress import kmeans_scratch_bytes
    from anemll_spec.spec.compression import Quantize, config
    from anemll_spec.spec.families import External

    if isinstance(model, External):
        from anemll_spec.build import external

        return external.estimate(model)
    plan = plan_of(model)
    compute = model.precision
    itemsize = 2 if compute == "float16" else 4
    cfg = config(model.compression)
    weight_bytes = 64
    last_pad = 0  # the file ends right after the last blob: no padding there
    largest_dense = 0
    for w in plan.weights:
        wcfg = cfg if w.compressible else None
        sizes = _blob_sizes(w, itemsize, wcfg)
        out_ch = w.out_channels
        if w.bias:
            sizes.append((out_ch * itemsize, out_ch))
        if isinstance(wcfg, Quantize) and TARGET_VERSION[model.deployment_target] < 18:
            sizes.insert(1, (out_ch, out_ch))  # iOS16 affine form: data, zero point, scale
        for size, elements in sizes:
            if elements >= 10:
                weight_bytes += 64 + _pad(size)
                last_pad = _pad(size) - size
        largest_dense = max(largest_dense, math.prod(w.shape) * itemsize)
    weight_bytes -= last_pad
    warnings = []
    for what, shape in plan.ane_dims + [(f"input {t.name}", t.shape) for t in plan.inputs]:
        big = [d for d in shape if d > ANE_MAX_DIM]
        if big:
            warnings.append(
                f"{what} {list(shape)}: dimension {max(big)} exceeds the ANE limit of "
                f"{ANE_MAX_DIM}; Core ML will run it off the Neural Engine (split it, as ANEMLL "
                "splits its LM head into chunks)"
            )
        if len(shape) > 4:
            warnings.append(f"{what} {list(shape)}: rank {len(shape)} > 4 is not ANE-friendly")
    if compute == "float32":
        warnings.append(
            "compute_precision float32: the Neural Engine computes in fp16 only; float32 ops run "
            "on CPU/GPU"
        )
    # Dense builds hold every weight until saved, and saving copies the largest about
    # twice more. Compressed builds hold each compressed weight at one byte per element
    # (pymil keeps sub-byte values unpacked); grouped, per-channel and per-block forms
    # are drawn a slice at a time, per-tensor ones need the dense weight (and working
    # copies) while compressing. Measured peaks (2026-12-06, docs/performance.md): dense
    # heads of 537 MB 974 MB (8 chunks) and 1,837 MB (1 chunk), a dense FFN of 403 MB
    # 958 MB, a per-tensor LUT of a 134 MB weight 813 MB; the estimate covers each.
    # Only output-axis-0 projections are drawn in slices: matmul's (k, n) weight is drawn
    # whole and compressed by stock coremltools, as per-tensor forms are (int8 per
    # channel of 16384 x 16384: 1.88 GB, about 6 bytes an element over the interpreter).
    # Weights no compression applies to (an attention's RoPE tables, norm weights) are
    # made whole: saving copies them as it copies dense weights. RoPE tables of context
    # 16384 x head_dim 1024 (fp16) peaked 158-190 MB over the interpreter, tables 67 MB.
    consts = sum(math.prod(w.shape) for w in plan.weights if not w.compressible) * itemsize
    if cfg is None:
        held = weight_bytes + 2 * largest_dense + consts
    else:
        held = weight_bytes + sum(math.prod(w.shape) for w in plan.weights if w.compressible)
        if cfg.granularity == "per_tensor":
            held += 4 * largest_dense
        else:
            whole = [math.prod(w.shape) for w in plan.weights if w.compressible and w.out_axis]
            held += 4 * itemsize * max(whole, default=0)
        held += 2 * consts + kmeans_scratch_bytes(model.compression, plan.weights, itemsize)
    peak = int(held + 350e6)  # + interpreter, coremltools (~290 MB) and per-slice scratch
    tensors = sum(map(len, (plan.weights, plan.inputs, plan.outputs, plan.states)))
    return Estimate(weight_bytes, plan.flops, peak, warnings, tensors)


def kmeans_groups(model: ModelBase) -> int:
    """The LUT groups k-means palettization clusters when `model` is built (0: none):
    compress.kmeans_groups over the family's declared weights."""
    from anemll_spec.build.compress import kmeans_groups as count

    return count(model.compression, model.weights())


def build_package(
    model: ModelBase,
    package: Path,
    progress: Callable[[str], None] | None = None,
    temp_dir: Path | None = None,
) -> None:
    """Build the model's .mlpackage at `package` (must not exist).

    The model is a validated spec model: what Core ML can express (deployment targets,
    compression forms, group and block sizes) was checked there, once. temp_dir: where
    coremltools writes the weights before it copies them into the package (None: the
    system's temporary folder)."""
    from anemll_spec.build.graph import Ctx, assemble
    from anemll_spec.interrupts import import_module

    ct = import_module("coremltools")  # the first import of a build: keeps a Ctrl-C

    package = Path(package)
    package.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_of(model)
    ctx = Ctx(model, progress, plan.weights)
    try:
        prog = assemble(plan, ctx, model.deployment_target)
    finally:
        ctx.close()
    if progress:
        progress("convert + save")
    precision = ct.precision.FLOAT16 if ctx.compute == "float16" else ct.precision.FLOAT32
    captured = io.StringIO()
    try:
        # coremltools draws tqdm bars for its (here empty) pass pipelines on stderr.
        with contextlib.redirect_stderr(captured), _temp_files_in(temp_dir):
            ct.convert(
                prog,
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, model.deployment_target),
                compute_precision=precision,
                pass_pipeline=ct.PassPipeline.EMPTY,  # the graph is already what we want on disk
                skip_model_load=True,
                package_dir=str(package),
            )
    finally:
        for line in captured.getvalue().replace("\r", "\n").splitlines():
            if line.strip() and "Running MIL" not in line:
                sys.stderr.write(line + "\n")


@contextlib.contextmanager
def _temp_files_in(folder: Path | None) -> Iterator[None]:
    """Python's temporary files in `folder` for the block: coremltools' convert writes
    every weight to a TemporaryDirectory before copying it into the package. In the
    build's staging folder, a build killed meanwhile leaves it where the cache clears
    stale staging, and on the disk the build's free-space check looked at (in /tmp,
    a killed build left the whole weight file behind)."""
    if folder is None:
        yield
        return
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def preflight(model: ModelBase, cache_dir: Path | None = None) -> Estimate | None:
    """The checks `build` makes before any work, without the work: the model's own
    rules, the cache folder, and (when it would be built) the memory it needs, a staging
    folder in the cache (made and removed again) and the disk it needs there. `bench`
    runs this for every case first, so bad input stops the run before anything is
    written (exit 2), not as a failed case. Returns the estimate of a model that would be
    built (None: cached or external), for `preflight_disk`."""
    from anemll_spec.build import cache
    from anemll_spec.spec.families import External

    if isinstance(model, External):
        from anemll_spec.build import external
        from anemll_spec.model_io import describe, synth_inputs

        try:
            io = describe(model.path)
            # the program and every weight it references, checked against the weight
            # file's records (a damaged or truncated weight.bin), without hashing
            external.validate(model, sha=False)
        except InputError as exc:  # not a model, or a damaged one
            msg = str(exc)
            raise InputError(
                msg if msg.startswith("model.path:") else f"model.path: {msg}"
            ) from None
        # input_ranges naming inputs the model does not have: the spec's mistake
        synth_inputs(io, int_ranges=model.input_ranges)
        return None
    check_call_memory(model, plan_of(model))
    cache_dir = cache_folder(cache_dir)
    key = cache_key(model)
    if cache.lookup(cache_dir, key)[0] is not None:
        return None
    est = estimate(model)
    check_memory(model, est)
    check_disk(cache_dir, est, on=writable(cache_dir))
    return est


def preflight_disk(
    estimates: list[Estimate],
    cache_dir: Path | None = None,
    compiled: int = 0,
    largest_compile: int = 0,
) -> None:
    """Room on the cache's disk for every build of a plan at once (`preflight` of each
    distinct uncached model gives the estimates): what each leaves in the cache, plus
    the largest temporary copy and the dispatch-floor model, plus `compiled`, the bytes
    of the compiled copies Core ML writes into the cache for the plan's cases
    (coreml_compile.compile_need). A sweep whose cases fit one by one but not together
    is refused before any case runs, not failed half-way. largest_compile: the largest
    of those copies, which Core ML first writes into the temp folder (check_compile_temp)."""
    cache_dir = cache_folder(cache_dir)
    if len(estimates) > 1 or compiled:
        on = writable(cache_dir)
        check_plan_disk(cache_dir, estimates, on=on, compiled=compiled)
        check_compile_temp(cache_dir, largest_compile, on=on)


def build(
    model: ModelBase,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    spec_name: str | None = None,
) -> Built:
    """The case's model as a saved package: from the cache, or built and cached.

    spec_name: recorded in the cache manifest (`cache list` shows which spec built what).
    progress: called with a str per step (weights drawn, "convert + save"); while k-means
    palettizes, with `palettize.GroupsDone` messages, str subclasses that also carry .done,
    .total (the build's groups), .elapsed_s and .eta_s, at most once a second and always
    for the last group."""
    from anemll_spec.build import cache
    from anemll_spec.mlmodel.inspect import weight_files, weights_sha256
    from anemll_spec.spec.families import External

    t0 = time.perf_counter()
    if isinstance(model, External):
        from anemll_spec.build import external

        return external.build(model)
    cache_dir = cache_folder(cache_dir)
    key = cache_key(model)
    entry, problem = cache.lookup(cache_dir, key)
    if entry is not None:
        return _built(entry, key, t0, cached=True)
    if problem:  # a warning that stays (progress lines are throttled and overwritten)
        sys.stderr.write(f"anemll-spec: build cache entry {key} damaged ({problem}); rebuilding\n")
        cache.discard(cache_dir / key)
    est = estimate(model)
    check_memory(model, est)
    staging = new_build_folder(cache_dir, key)
    try:
        check_disk(cache_dir, est)
        package = staging / cache.PACKAGE
        build_package(model, package, progress, temp_dir=staging)
        gc.collect()  # the built program (cyclic: ops <-> vars) holds every weight
        for extra in staging.iterdir():  # coremltools' temporary weights, if still there
            if extra.name != cache.PACKAGE:
                shutil.rmtree(extra, ignore_errors=True)
        files = weight_files(package)
        weight_bytes = sum(p.stat().st_size for p in files)
        sha = weights_sha256(package)
        build_s = time.perf_counter() - t0
        from importlib.metadata import version

        cache.write_manifest(
            staging,
            key,
            {
                "model": model.build_fields(),
                "spec": spec_name,
                "coremltools": version("coremltools"),
                "weight_bytes": weight_bytes,
                "flops": est.flops,
                "weights_sha256": sha,
                "build_s": build_s,
                "warnings": est.warnings,
            },
        )
        entry = cache.publish(cache_dir, key, staging)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        full = disk_filled(cache_dir, key, est, exc)
        if full:
            raise InputError(full) from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _built(entry, key, t0, cached=False)


def _built(entry, key: str, t0: float, *, cached: bool) -> Built:
    """A cache entry as a Built, from its manifest (what was read back, not remembered)."""
    m = entry.manifest
    return Built(
        path=entry.package,
        key=key,
        weight_bytes=m["weight_bytes"],
        flops=m["flops"],
        build_s=time.perf_counter() - t0,
        cached=cached,
        weights_sha256=m["weights_sha256"],
        warnings=m.get("warnings", []),
    )
