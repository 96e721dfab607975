"""Ids and hashes a bundle claims, derived again from what it carries (import's check).

- host_id: the hash of the host's fields (writer.host_id) under the columns of any
  schema version up to this one (a v1 host was hashed without the v2 and v3 columns);
- spec_sha256: sha256 of spec_yaml;
- case_key, variant_key, build_key, the published model name, and what names the case
  and how it ran (runs.spec_name; each case's model_name, params, model_family,
  concurrency and instances): re-expanded from the run's spec text, where it expands
  here (not for external models, whose files are not in the bundle, nor for specs this
  version cannot read: those keys are not derivable and are taken as data). A case that
  calls itself a published model must carry a spec that builds exactly that model,
  with its documented weight bytes. Where the spec expands, a NULL name, params or
  family is refused (every writer filled them from it; NULL hid the claim); a model_name
  is the current one or the one the code before f30637f wrote (a swept compression
  named by its JSON, not lut6/g8); instances is NULL where
  concurrency is 1, and a `shared` run's may be NULL (rows written before schema v4,
  whose concurrent instances were all shared).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from anemll_spec.store import schema
from anemll_spec.store.published import MODEL_WEIGHT_BYTES
from anemll_spec.store.rows import host_id

MAX_DERIVED_CASES = 4096  # a spec that expands further is not re-expanded on import


def host_id_matches(row: Mapping) -> bool:
    """Does row['host_id'] hash the row's other fields (under some schema version)?"""
    for version in range(1, schema.SCHEMA_VERSION + 1):
        cols = [c.name for c in schema.HOSTS.columns if c.name != "host_id"]
        if any(row.get(c) is not None for c in cols if schema.HOSTS.column(c).since > version):
            continue
        fields = {c: row.get(c) for c in cols if schema.HOSTS.column(c).since <= version}
        if host_id(fields) == row["host_id"]:
            return True
    return False


def spec_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expand_spec(text: str) -> tuple[str, dict[int, object]] | None:
    """The spec's name and its cases by their index (a sweep point that repeats an earlier
    one is left out, so indexes can skip), or None when this anemll-spec cannot expand it
    here."""
    from anemll_spec.spec import load_cases

    with tempfile.TemporaryDirectory(prefix="anemll-spec-import-") as d:
        path = Path(d) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            spec, cases = load_cases(path, max_cases=MAX_DERIVED_CASES)
        except Exception:  # noqa: BLE001  (RecursionError too) a spec this version cannot read
            return None
    if any(getattr(c.model, "family", None) == "external" for c in cases):
        return None
    return spec.name, {c.index: c for c in cases}


class SpecChecker:
    """Checks the cases of runs against their specs, expanding each distinct spec text
    once and hashing each (case, variant) once: a 100,000-case bundle of one spec costs
    one expansion."""

    def __init__(self) -> None:
        self._specs: dict[str, tuple[str, dict[int, object]] | None] = {}
        self._keys: dict[tuple, object] = {}

    def _expanded(self, text: str | None) -> tuple[str, dict[int, object]] | None:
        if text is None:
            return None
        sha = spec_sha256(text)
        if sha not in self._specs:
            self._specs[sha] = expand_spec(text)
        return self._specs[sha]

    def cases(self, text: str | None) -> dict[int, object] | None:
        expanded = self._expanded(text)
        return None if expanded is None else expanded[1]

    def check_spec_name(self, spec_text: str | None, spec_name: str | None) -> str | None:
        """What is wrong with a run's spec_name (its spec's `name`), or None. Not checked
        where the spec does not expand here, or the run names none (NULL)."""
        expanded = self._expanded(spec_text)
        if expanded is None or spec_name is None or spec_name == expanded[0]:
            return None
        return f"spec_name {spec_name!r}, but its spec is named {expanded[0]!r}"

    def _memo(self, key: tuple, make):
        if key not in self._keys:
            self._keys[key] = make()
        return self._keys[key]

    def check_run(self, spec_text: str | None, cases: Iterable[Mapping]) -> str | None:
        """What is wrong with the keys and names of one run's cases, or None.

        cases: rows with case_id, case_index, case_key, variant_key, build_key,
        model_name, params, model_family, concurrency, instances, backend, compute_units,
        device, weight_bytes."""
        expanded = self.cases(spec_text)
        sha = spec_sha256(spec_text) if spec_text is not None else None
        for c in cases:
            problem = self._check_case(sha, expanded, c)
            if problem:
                return problem
        return None

    def _check_case(
        self, sha: str | None, expanded: dict[int, object] | None, c: Mapping
    ) -> str | None:
        claimed, cid = c["model_name"], c["case_id"]
        if claimed in MODEL_WEIGHT_BYTES and c["weight_bytes"] not in (
            None,
            MODEL_WEIGHT_BYTES[claimed],
        ):
            return (
                f"case {cid}: {claimed} has {MODEL_WEIGHT_BYTES[claimed]:,} weight bytes, "
                f"not {c['weight_bytes']:,}"
            )
        if expanded is None:
            if claimed in MODEL_WEIGHT_BYTES:
                return (
                    f"case {cid} calls itself {claimed} but its run carries no spec that builds it"
                )
            return None
        i = c["case_index"]
        case: Any = expanded.get(i) if i is not None else None
        if case is None:
            return f"case {cid}: case_index {i} is not a case of its run's spec"
        name = self._memo((sha, i, "name"), lambda: case.model_name)
        published = name if name in MODEL_WEIGHT_BYTES else None
        if (claimed in MODEL_WEIGHT_BYTES or published) and claimed != published:
            return f"case {cid} calls itself {claimed!r}, but its spec builds {name!r}"
        problem = _check_claims(cid, case, c)
        if problem:
            return problem
        build_key = self._memo((sha, i, "build"), lambda: case.build_key)
        if c["build_key"] is not None and c["build_key"] != build_key:
            return f"case {cid}: build_key is not the hash of its spec's model"
        how = (c["backend"], c["compute_units"], c["device"])
        variant_key = self._memo((sha, i, "variant", how), lambda: case.variant_key(*how))
        if c["variant_key"] is not None and c["variant_key"] != variant_key:
            return f"case {cid}: variant_key is not the hash of what it measured"
        keys = self._memo((sha, i, "keys", c["backend"]), lambda: _case_keys(case, c["backend"]))
        if c["case_key"] not in keys:
            return f"case {cid}: case_key is not the hash of its spec's case"
        return None


def _check_claims(cid: str, case: Any, c: Mapping) -> str | None:
    """The case's names and how it ran against its spec's case (the published name is
    checked by the caller)."""
    missing = [k for k in ("model_name", "params", "model_family") if c[k] is None]
    if missing:  # every writer filled them (v1 on): NULL hides what the spec says
        are, them = ("is", "it") if len(missing) == 1 else ("are", "them")
        return f"case {cid}: {', '.join(missing)} {are} NULL, but the run's spec gives {them}"
    claimed = c["model_name"]
    if claimed not in (case.model_name, _name_before_f30637f(case)):
        return f"case {cid} calls itself {claimed!r}, but its spec names it {case.model_name!r}"
    if json.loads(c["params"]) != _as_stored(case.params):
        return f"case {cid}: params {c['params']} are not its sweep point's"
    family = case.model.family
    if c["model_family"] != family:
        return f"case {cid}: model_family {c['model_family']!r}, but its spec builds {family!r}"
    run = case.run
    concurrency = 1 if c["concurrency"] is None else c["concurrency"]
    if concurrency != run.concurrency:
        return f"case {cid}: concurrency {concurrency}, but its spec runs {run.concurrency}"
    instances = run.instances if run.concurrency > 1 else None
    older = instances == "shared" and c["instances"] is None  # written before schema v4
    if c["instances"] != instances and not older:
        shown = "NULL" if c["instances"] is None else repr(c["instances"])
        runs = f"{instances!r} instances" if instances else "one instance (instances NULL)"
        return f"case {cid}: instances {shown}, but its spec runs {runs}"
    return None


def _as_stored(params: Mapping) -> object:
    """Params as the writer stores them (rows.py: JSON, non-JSON values as text)."""
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def _name_before_f30637f(case: Any) -> str:
    """model_name as the code before f30637f wrote it: a swept compression by its JSON."""
    from anemll_spec.hashing import canonical_json
    from anemll_spec.spec.case import published_model

    def short(value: Any) -> str:
        if isinstance(value, list):
            return "+".join(map(str, value))
        return canonical_json(value) if isinstance(value, dict) else str(value)

    name = case.model_name
    if not case.params or published_model(case.model):
        return name
    inner = ",".join(f"{k.split('.')[-1]}={short(v)}" for k, v in case.params.items())
    return f"{case.spec_name}[{inner}]"


def _case_keys(case, backend: str | None) -> set[str]:
    """The case keys a bench of this case may have stored: the spec's own, or with its
    backends replaced by `--backend X` (which the key records)."""
    keys = {case.key}
    for b in {backend, "auto"} - {None}:
        keys.add(case.with_backend(b).key)
    return keys
