"""anemll-spec schema: the spec's JSON Schema, for editors and other tools."""

from __future__ import annotations

import argparse

HELP = "print the JSON Schema of spec files (for editors: yaml-language-server)"
DESCRIPTION = (
    "Print the JSON Schema of anemll-spec spec files. specs/spec.schema.json is this "
    "output; a spec that starts with `# yaml-language-server: $schema=spec.schema.json` is "
    "checked and completed by editors as it is typed. Rules across fields (vocab_size "
    "divisible by chunks, ...) are beyond JSON Schema: `anemll-spec validate` checks them."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="FILE", help="write it to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from anemll_spec.spec.document import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0
