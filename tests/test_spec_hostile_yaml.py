"""Spec files written to hurt: values that cost far more once expanded than on disk, text
no encoder takes, many separating tabs, paths through values that are not mappings.
Each is refused (or read) with a located one-line error, exit 2, quickly and briefly:
the bounds are checked by counting (characters, parses, nodes), not by timing."""

from __future__ import annotations

import pytest
from test_spec_bad_input import GOOD, line_of, refused, write


def test_an_aliased_long_string_repeated_is_refused_in_one_line(cli, tmp_path):
    """106 KB on disk, 200 MB once every alias is a copy: it wrote 200 MB of errors."""
    text = GOOD.replace("name: t", "name: t\ndescription: &b " + "a" * 100_000)
    text = text.replace(
        "backends: [numpy]",
        "backends: [numpy]\n  compute_units: [" + ", ".join(["*b"] * 2000) + "]",
    )
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert len(err.splitlines()) == 1 and len(err) < 300, err[:500]
    line = line_of(text, "compute_units")
    assert (
        f":{line}:" in err and "expands to more than 1,048,576 characters (an alias bomb?)" in err
    )


def test_echoed_values_are_cut_to_a_pointer(cli, tmp_path):
    long = "x" * 5000
    text = GOOD.replace("backends: [numpy]", f"backends: [numpy]\n  compute_units: [{long}]")
    text += f"sweep:\n  run.device: [{long}1, {long}1]\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert err.count("\n") >= 2 and max(map(len, err.splitlines())) < 400, err[:600]
    assert "unknown value 'xxxx" in err and "…" in err


@pytest.mark.parametrize(
    ("where", "text", "line"),
    [
        ("model.path", 'model: {family: external, path: "\\ud800.mlpackage"}', 2),
        ("run.device", 'model: {family: matmul, m: 8, k: 8, n: 8}\nrun: {device: "\\udc80"}', 3),
        ("run", 'model: {family: matmul, m: 8, k: 8, n: 8}\nrun: {"\\udc80": 1}', 3),
        ("description", 'description: "a\\ud800"\nmodel: {family: matmul, m: 8, k: 8, n: 8}', 2),
    ],
)
def test_a_lone_surrogate_is_refused_where_it_is(cli, tmp_path, where, text, line):
    """YAML's \\u escapes can write half a UTF-16 pair: a traceback from pydantic's encoder,
    pydantic's own wording, or (description) stored as is."""
    err = refused(cli, tmp_path, write(tmp_path, f"name: t\n{text}\n"))
    assert f":{line}:" in err and f" {where}: not valid Unicode: " in err, err
    assert "is a lone surrogate" in err and len(err.splitlines()) == 1, err


def test_a_home_of_no_user_is_said_so(cli, tmp_path):
    """`~models/x` for `~/models/x`: expanduser raised RuntimeError, a traceback."""
    text = "name: t\nmodel: {family: external, path: ~nosuchuser99/m.mlpackage}\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert err.strip().endswith(
        ":2:33: model.path: cannot expand '~nosuchuser99': no such user (~/ is your home)"
    ), err


def test_many_separating_tabs_cost_two_parses_not_one_each(tmp_path, monkeypatch):
    """One parse per tab PyYAML refused: 64 tabs in a 200 KB file took 269 s."""
    import yaml

    from anemll_spec.spec import load_cases

    calls = []
    compose = yaml.compose
    monkeypatch.setattr(yaml, "compose", lambda *a, **k: calls.append(1) or compose(*a, **k))
    text = GOOD.replace("iterations: 5", "iterations:\t5") + "".join(
        f"k{i}:\t1\t# note\t\n" for i in range(64)
    )
    from anemll_spec.errors import SpecError

    with pytest.raises(SpecError) as exc:
        load_cases(write(tmp_path, text))
    assert len(calls) == 2  # as written (refused), then every separating tab a space
    assert len(exc.value.problems) == 64  # every unknown key found, each located
    assert {p.line for p in exc.value.problems if p.path.startswith("k")} == set(
        range(line_of(text, "k0:"), line_of(text, "k63:") + 1)
    )


def test_tabs_inside_quoted_and_block_scalars_stay_tabs():
    """Only separating tabs become spaces: a tab in a quoted or block scalar is content."""
    from anemll_spec.spec.yamlsafe import load_yaml

    value, pos = load_yaml("a: \"x\ty\"\t# c\nb: |\n  p\tq\n  r\nc: [1,\t2]\nd:\t'u\tv'\n", "t")
    assert value == {"a": "x\ty", "b": "p\tq\nr\n", "c": [1, 2], "d": "u\tv"}
    assert pos[("d",)] == (6, 4)  # positions hold: one character for one


def test_nodes_are_counted_while_parsing(cli, tmp_path):
    """A long list of numbers was parsed whole (300,000 of them: seconds, hundreds of MB)
    before the converter counted its nodes; it stops at the 20,001st now, and says where
    (100,000 here: a file under the store's spec limit, which a longer one meets first)."""
    text = GOOD + "description: [" + ",".join(["1"] * 100_000) + "]\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    line = line_of(text, "description")
    # the 20,001st node: name/model/run and their fields come first
    assert f":{line}:" in err and "document has more than 20,000 nodes" in err, err


@pytest.mark.parametrize(
    ("base", "swept", "said"),
    [
        (
            "run:\n  backends: [numpy]\n  tolerance: garbage\n",
            "run.tolerance.min_cosine: [0.9, 0.99]",
            "run.tolerance: must be a mapping, got a string",
        ),
        (
            "run:\n  backends: [numpy]\n  tolerance: [1, 2]\n",
            "run.tolerance.min_cosine: [0.9, 0.99]",
            "run.tolerance: must be a mapping, got a list",
        ),
    ],
)
def test_a_sweep_through_a_value_that_is_no_mapping_does_not_overwrite_it(
    cli, tmp_path, base, swept, said
):
    """The value on the sweep's path was replaced by {} and the spec passed."""
    text = "name: t\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n" + base + f"sweep: {{{swept}}}\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert f":{line_of(text, 'tolerance:')}:" in err and said in err, err


def test_a_swept_compression_field_over_none_makes_the_compression(tmp_path):
    """`compression: none` is compression's word for no mapping: a sweep inside it makes one."""
    from anemll_spec.spec import load_cases

    text = (
        "name: t\nmodel: {family: matmul, m: 8, k: 8, n: 64, compression: none}\n"
        "run: {backends: [numpy]}\nsweep: {model.compression.palettize.nbits: [4, 6]}\n"
    )
    cases = load_cases(write(tmp_path, text))[1]
    assert [c.model.compression.palettize.nbits for c in cases] == [4, 6]


def test_did_you_mean_prefers_the_name_the_typo_starts_with(cli, tmp_path):
    """`warmups` was told 'warmup_s' (seconds; difflib scores it 0.933) for `warmup` (0.923)."""
    text = GOOD.replace("iterations: 5", "iterations: 5\n  warmups: 1\n  iteration: 3")
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert "run.warmups: unknown key 'warmups'; did you mean 'warmup'?" in err, err
    # iterations is set: not "did you mean" it (that would write it twice)
    assert "run.iteration: unknown key 'iteration'; 'iterations' is set already" in err, err


def test_a_base_value_the_sweep_writes_into_says_so(cli, tmp_path):
    """Every point shares the problem, so it was reported as the base line's alone, and the
    user's valid `quantize` line was blamed without a word about the sweep."""
    text = (
        "name: t\nmodel:\n  family: matmul\n  m: 8\n  k: 8\n  n: 64\n"
        "  compression: {quantize: {dtype: int8}}\nrun: {backends: [numpy]}\n"
        "sweep: {model.compression.palettize.nbits: [4, 6]}\n"
    )
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert err.strip().endswith(
        ":7:16: model.compression: must be 'none', {palettize: {...}} or {quantize: {...}} "
        "(the sweep sets model.compression.palettize.nbits inside it)"
    ), err


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"])
def test_nel_ls_and_ps_are_characters_as_yaml_1_2_reads_them(tmp_path, char):
    """PyYAML (YAML 1.1) breaks lines at NEL, LS and PS; YAML 1.2 and editors do not: every
    line after one was numbered one too many, one in a comment or a plain scalar was a
    syntax error, and a quoted NEL was read as a space. Lines count '\\n' only here."""
    from anemll_spec.errors import SpecError
    from anemll_spec.spec import load_cases
    from anemll_spec.spec.yamlsafe import load_yaml

    assert load_yaml(f'a: "b{char}c"\nd: |\n  e{char}f\n', "s.yaml")[0] == {
        "a": f"b{char}c",
        "d": f"e{char}f\n",
    }
    text = GOOD.replace("name: t", f"name: t  # a{char}b\n# c{char}d\ndescription: e{char}f")
    text = text.replace("chunks: 2", "chunks: 3").replace("iterations: 5", f"iterations: 5 #{char}")
    doc, pos = load_yaml(text, "s.yaml")
    lines = text.split("\n")
    line = next(i for i, t in enumerate(lines, 1) if t.startswith("description"))
    assert doc["description"] == f"e{char}f"
    assert pos[("description",)] == (line, len("description: ") + 1) == (3, 14)
    with pytest.raises(SpecError) as exc:
        load_cases(write(tmp_path, text))
    (p,) = exc.value.problems
    line = next(i for i, t in enumerate(lines, 1) if "chunks" in t)
    assert (p.path, p.line, p.column) == ("model.chunks", line, lines[line - 1].index("3") + 1)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (
            '!!int "\u0662\u0665\u0666"',
            "'\u0662\u0665\u0666' is not a YAML int",
        ),  # Arabic-Indic 256
        ('!!int "1_0_24"', "'1_0_24' is not a YAML int"),
        ('!!int " 256 "', "' 256 ' is not a YAML int"),
        ("!!int 0X100", "'0X100' is not a YAML int"),
        ('!!float "1_0"', "'1_0' is not a YAML float"),
        ('!!float "inf"', "'inf' is not a YAML float"),
    ],
)
def test_an_explicit_number_tag_takes_only_yaml_numbers(cli, tmp_path, value, said):
    """A !!int or !!float tag took whatever Python's int() and float() take: Arabic-Indic
    digits, underscores, blanks around it, 'inf' (`hidden_size: !!int "1_0_24"` was 1024).
    The core schema's forms only, as an untagged scalar reads them."""
    text = GOOD.replace("hidden_size: 64", f"hidden_size: {value}")
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert err == f"error: {tmp_path / 'spec.yaml'}:4:16: model.hidden_size: {said}\n"


def test_an_explicit_number_tag_on_a_yaml_number_is_read(tmp_path):
    from anemll_spec.spec import load_cases

    text = GOOD.replace("hidden_size: 64", 'hidden_size: !!int "0x40"')
    text = text.replace("iterations: 5", "iterations: !!int +5\n  max_time_s: !!float 1e1")
    (case,) = load_cases(write(tmp_path, text))[1]
    assert (case.model.hidden_size, case.run.iterations, case.run.max_time_s) == (64, 5, 10.0)
