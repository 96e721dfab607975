"""anemll-spec info: this host (chip, OS, power, versions) and which backends run here."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, human_bytes, print_json, table

HELP = "show the host, versions and the available backends (and why others are not)"

_HOST_LINES = (
    ("chip", "chip"),
    ("model", "model_identifier"),
    ("OS", "os_name"),
    ("OS version", "os_version"),
    ("OS build", "os_build"),
    ("kernel", "kernel"),
    ("architecture", "machine"),
    ("machine id", "machine_id"),
    ("cores", "cores_total"),
    ("P cores", "cores_p"),
    ("E cores", "cores_e"),
    ("memory", "memory_bytes"),
    ("GPU", "gpu"),
    ("power source", "power_source"),
    ("low power mode", "low_power_mode"),
    ("energy mode", "energy_mode"),
    ("thermal state", "thermal_state"),
    ("Rosetta", "translated"),
    ("Python", "python_version"),
    ("coremltools", "coremltools_version"),
    ("numpy", "numpy_version"),
    ("duckdb", "duckdb_version"),
    ("torch", "torch_version"),
    ("anemll-spec", "tool_version"),
    ("git commit", "git_commit"),
    ("git dirty", "git_dirty"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec import backends, host
    from anemll_spec.errors import InputError
    from anemll_spec.machine_id import machine_id

    # the id a store keeps of its writers (runs.writer_machine_id): not a hosts column
    info = {**host.capture(), "machine_id": machine_id()}
    avail = backends.all_availability()
    try:
        auto, why = backends.resolve_auto()
    except InputError as exc:
        auto, why = None, str(exc)
    if args.json:
        print_json(
            {
                "host": info,
                "backends": [a.to_dict() for a in avail],
                "auto": {"backend": auto, "reason": why},
            }
        )
        return 0
    for label, key in _HOST_LINES:
        value = info.get(key)
        if value is None:
            continue
        if key == "memory_bytes":
            value = human_bytes(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        print(f"{label + ':':<16}{value}")
    print()
    rows = [[a.name, "available" if a.available else "unavailable", a.reason] for a in avail]
    print(table(rows, ["backend", "status", "why"]))
    print(f"\n{why}")
    return 0
