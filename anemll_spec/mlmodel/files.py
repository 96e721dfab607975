"""Where the parts of a saved Core ML model lie, checked so that no path leaves the model.

Three forms:
- `.mlpackage`: a folder; Manifest.json names the root model file under Data/
  (`itemInfoEntries[rootModelIdentifier].path`, normally com.apple.CoreML/model.mlmodel);
  weights live in Data/com.apple.CoreML/weights/.
- `.mlmodel`: one protobuf file. A neural network's weights are inside it: it has no
  weights folder (a `weights/` beside it belongs to whatever else lives in that folder).
  An ML Program's are in `weights/` beside it, as in a package's Data folder.
- `.mlmodelc`: a folder the compiler writes: model.mil (the program as text),
  weights/weight.bin, metadata.json (the I/O description), coremldata.bin (undocumented).

Every path read from the model (the manifest entry, a weight file of the program) must be
relative, free of `..`, and stay inside the model's folder after symlinks are resolved: a
model is untrusted input and may not make us read (or hash) the user's other files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from anemll_spec.errors import InputError

KINDS = (".mlpackage", ".mlmodel", ".mlmodelc")


@dataclass(frozen=True)
class ModelFiles:
    path: Path  # as the user gave it
    kind: str  # mlpackage | mlmodel | mlmodelc
    root: Path  # the folder nothing may leave (the package, the .mlmodelc, the .mlmodel's folder)
    spec_file: Path | None  # the protobuf (mlpackage, mlmodel)
    mil_file: Path | None  # model.mil (mlmodelc)
    model_dir: Path  # the folder `@model_path` refers to

    @property
    def weights_dir(self) -> Path:
        return self.model_dir / "weights"


def inside(root: Path, rel: object, where: str, what: str) -> Path:
    """root / rel, refused unless rel is a relative path string that stays inside root."""
    if not isinstance(rel, str) or not rel:
        raise InputError(f"{where}: {what} must be a non-empty string, got {rel!r}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or "\0" in rel:
        raise InputError(f"{where}: {what} {rel!r} points outside the model")
    full = root / p
    check_contained(root, full, where, what)
    return full


def check_contained(root: Path, path: Path, where: str, what: str) -> None:
    """Refuse `path` if, with symlinks resolved, it is not under `root` (or if resolving
    fails: a symlink loop is RuntimeError on Python 3.11, OSError ELOOP on 3.13)."""
    try:
        base = root.resolve()
        target = path.resolve()
    except (OSError, RuntimeError) as exc:
        why = "symlink loop" if "loop" in str(exc).lower() else getattr(exc, "strerror", exc)
        raise InputError(f"{where}: {what} {path.name!r} cannot be resolved ({why})") from None
    if target != base and base not in target.parents:
        raise InputError(f"{where}: {what} {path.name!r} links outside the model ({target})")


def locate(path: str | Path) -> ModelFiles:
    """The files of the model at `path` (InputError naming the path if it is not one)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such model (file or folder not found)")
    suffix = p.suffix.lower()
    if suffix == ".mlpackage":
        return _package(p)
    if suffix == ".mlmodel":
        if not p.is_file():
            raise InputError(f"{p}: an .mlmodel must be a file")
        return ModelFiles(p, "mlmodel", p.parent, p, None, p.parent)
    if suffix == ".mlmodelc":
        if not p.is_dir():
            raise InputError(f"{p}: a compiled model (.mlmodelc) must be a folder")
        mil = p / "model.mil"
        if mil.exists():
            check_contained(p, mil, str(p), "model.mil")
        return ModelFiles(p, "mlmodelc", p, None, mil if mil.is_file() else None, p)
    raise InputError(f"{p}: not a Core ML model (expected .mlpackage, .mlmodelc or .mlmodel)")


def _package(pkg: Path) -> ModelFiles:
    manifest = pkg / "Manifest.json"
    if not pkg.is_dir() or not manifest.is_file():
        raise InputError(f"{pkg}: not an .mlpackage (Manifest.json missing)")
    check_contained(pkg, manifest, str(pkg), "Manifest.json")
    where = f"{pkg}: Manifest.json"
    try:
        doc = json.loads(manifest.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nesting too deep
        raise InputError(f"{where} is damaged (not JSON: {exc})") from None
    entries = doc.get("itemInfoEntries") if isinstance(doc, dict) else None
    root_id = doc.get("rootModelIdentifier") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise InputError(f"{where} is damaged (itemInfoEntries must be an object)")
    if not isinstance(root_id, str):
        raise InputError(f"{where} is damaged (rootModelIdentifier must be a string)")
    entry = entries.get(root_id)
    if not isinstance(entry, dict):
        raise InputError(f"{where} is damaged (no item entry for the root model {root_id!r})")
    data = pkg / "Data"
    model = inside(data, entry.get("path"), where, "the root model path")
    check_contained(pkg, model, where, "the root model path")  # Data/ itself may be a link
    if not model.is_file():
        raise InputError(
            f"{pkg}: the model file Data/{entry['path']} named in Manifest.json is missing"
        )
    return ModelFiles(pkg, "mlpackage", pkg, model, None, model.parent)


def weight_files(model: ModelFiles | str | Path) -> list[Path]:
    """Files under the weights folder, name order (each checked to stay inside the model)."""
    files = model if isinstance(model, ModelFiles) else locate(model)
    d = files.weights_dir
    if not d.is_dir() or (files.kind == "mlmodel" and not _ml_program(files)):
        return []
    check_contained(files.root, d, str(files.path), "weights folder")
    out = []
    for p in sorted(d.rglob("*")):
        if p.is_symlink() or p.is_file():
            check_contained(files.root, p, str(files.path), "weight file")
            if p.is_file():
                out.append(p)
    return out


def read_compiled_metadata(path: Path) -> dict | None:
    """The single metadata dict of a .mlmodelc, or None if it has no metadata.json."""
    meta = path / "metadata.json"
    if not meta.is_file():
        return None
    check_contained(path, meta, str(path), "metadata.json")
    try:
        doc = json.loads(meta.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nesting too deep
        raise InputError(f"{path}: metadata.json is not valid JSON ({exc})") from None
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        return doc[0]
    if isinstance(doc, dict):
        return doc
    raise InputError(f"{path}: metadata.json is not a list holding one model description")


def _ml_program(files: ModelFiles) -> bool:
    """Whether a lone .mlmodel is an ML Program (its weights in the weights/ beside it)."""
    from anemll_spec.mlmodel.proto import parse_model

    assert files.spec_file is not None
    return parse_model(files.spec_file.read_bytes(), files.path).WhichOneof("Type") == "mlProgram"
