"""anemll-spec schema: the spec's JSON Schema, for editors and other tools."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import nonempty, out_file

HELP = "print the JSON Schema of spec files (for editors: yaml-language-server)"
DESCRIPTION = (
    "Print the JSON Schema of anemll-spec spec files. specs/spec.schema.json is this "
    "output; a spec that starts with `# yaml-language-server: $schema=spec.schema.json` is "
    "checked and completed by editors as it is typed. Rules across fields (vocab_size "
    "divisible by chunks, ...) are beyond JSON Schema: `anemll-spec validate` checks them."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        metavar="FILE.json",
        type=nonempty,
        help="write it to FILE.json instead of stdout (an earlier schema there is replaced, "
        "any other file only with --force)",
    )
    p.add_argument("--force", action="store_true", help="replace --out whatever it holds")


def run(args: argparse.Namespace) -> int:
    import json

    from anemll_spec.errors import InputError
    from anemll_spec.paths import write_file
    from anemll_spec.spec.document import json_schema
    from anemll_spec.store import default_target

    schema = json_schema()
    text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    if args.out:
        path = out_file(
            args.out,
            store=default_target(None),
            force=args.force,
            replaceable=lambda p: _is_schema(p, schema["title"]),
            kind=(".json", "a JSON Schema"),
        )
        try:  # beside it, then renamed: a full disk leaves the old schema whole
            write_file(path, text)
        except OSError as exc:
            raise InputError(f"--out {args.out}: cannot write it: {exc.strerror or exc}") from None
    else:
        print(text, end="")
    return 0


def _is_schema(path, title: str) -> bool:
    """An earlier output of this command (what a re-run regenerates), not a user's file."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(old, dict) and old.get("title") == title and "$defs" in old
