"""Where charts get their rows: read-only SQL over the store, with the user's filters.

Every chart aggregates in DuckDB and hands Vega only the few rows it draws. The user's
`--where` is a boolean SQL expression over the chart's source rows; it runs on a
read-only, sandboxed connection (no writes, no file or network access), and is
rejected before that if it could be more than one expression (`;`, comments,
statements, unbalanced parentheses).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from dataclasses import dataclass
from typing import Any

from anemll_spec.errors import InputError
from anemll_spec.text import printable
from anemll_spec.vocab import DEFAULT_BASELINE

# Words that start or smuggle a statement; a filter is an expression, never one of these.
_STATEMENT_WORDS = frozenset(
    {
        *("alter", "analyze", "attach", "begin", "call", "checkpoint", "commit", "copy"),
        *("create", "deallocate", "delete", "describe", "detach", "drop", "execute"),
        *("explain", "export", "force", "grant", "import", "insert", "install", "load"),
        *("pivot_wider", "pragma", "prepare", "reset", "revoke", "rollback", "set", "show"),
        *("summarize", "transaction", "truncate", "unpivot_wider", "update", "use", "vacuum"),
    }
)
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--|/\*|\*/|[A-Za-z_][A-Za-z0-9_]*|.", re.S)


class NoData(InputError):
    """Nothing to draw: an empty store or filters that removed every row."""


@dataclass(frozen=True)
class Options:
    """What the user narrowed a chart to (all optional)."""

    model: str | None = None
    baseline: str = DEFAULT_BASELINE
    where: str | None = None
    runs: tuple[str, ...] = ()
    metric: str | None = None  # sweep: what to plot
    param: str | None = None  # sweep: the swept parameter on x
    by: str = "chip"  # factors: one row per chip (and OS where several), or by OS version
    max_points: int = 4000  # raw sample points drawn per chart, at most

    def describe(self, run: bool = True) -> str:
        """The filters in words, for 'nothing to draw' messages and subtitles (run=False:
        for a message that names the run already)."""
        parts = []
        if self.runs and run:
            parts.append("run " + " vs ".join(self.runs))
        if self.model:
            parts.append(f"model = {self.model!r}")
        if self.where:
            parts.append(f"--where {self.where!r}")
        if self.by != "chip":
            parts.append(f"--by {self.by}")
        return ", ".join(parts) if parts else "no filter"


def check_filter(text: str | None) -> str | None:
    """The `--where` expression, or InputError saying why it is refused."""
    if text is None or not text.strip():
        return None
    depth = 0
    for tok in _TOKEN.findall(text):
        if tok == ";":
            raise InputError(f"--where {text!r}: ';' is not allowed (one filter expression only)")
        if tok in ("--", "/*", "*/"):
            raise InputError(f"--where {text!r}: SQL comments are not allowed")
        if tok in ("?", "$"):  # the chart's own query binds its parameters by position
            raise InputError(f"--where {text!r}: parameters ('{tok}') are not allowed")
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
            if depth < 0:
                break
        elif tok.lower() in _STATEMENT_WORDS:
            raise InputError(
                f"--where {text!r}: {tok!r} is not allowed; give a filter expression "
                "such as \"chip LIKE 'M4%'\""
            )
    if depth != 0:
        raise InputError(f"--where {text!r}: unbalanced parentheses")
    _check_syntax(text)
    return text.strip()


def _check_syntax(text: str) -> None:
    """Parse the filter alone (nothing runs): a syntax error in it is told against the
    user's text, not the chart's SQL around it (which the parser would quote instead)."""
    import duckdb

    for sql in (f"SELECT 1 WHERE {text}", f"SELECT 1 WHERE ({text})"):
        try:
            duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise InputError(f"--where {text!r}: {str(exc).splitlines()[0]}") from None


def connect(target: str | None):
    """A read-only, sandboxed connection to the store (InputError if there is none)."""
    from anemll_spec.store import open_store

    return open_store(target, read_only=True, sandbox=True)


def fetch(con, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts. A bad --where surfaces here as an InputError."""
    import duckdb

    try:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    except duckdb.Error as exc:
        from anemll_spec.store import lake, lake_target

        if lake.transient(exc):  # the shared store's server went away: exit 1 (cli.main)
            raise
        msg = lake_target.redact(str(exc).split("\n")[0])
        raise InputError(f"the chart's query failed (check --where / --model): {msg}") from None
    return [{n: _jsonable(v) for n, v in zip(names, r, strict=True)} for r in rows]


def where_sql(opts: Options) -> str:
    """`(filter)` for a WHERE clause; TRUE when there is none."""
    expr = check_filter(opts.where)
    return f"({expr})" if expr else "TRUE"


def pick_run(con, opts: Options, *, needs: str = "TRUE", lacking: str = "") -> str:
    """The run a single-run chart draws: --run, else the latest run with matching cases.

    `needs` is an extra SQL condition on `results` rows (e.g. that samples exist);
    `lacking` says what is missing when cases pass the filters but none meets `needs`
    ("{filters}" in it stands for the filters).
    """
    if opts.runs:
        from anemll_spec.store.lookup import resolve_run

        return resolve_run(con, opts.runs[0])
    rows = fetch(
        con,
        f"""SELECT run_id FROM results
        WHERE ({needs}) AND (? IS NULL OR model_name = ?) AND {where_sql(opts)}
        ORDER BY run_started_at DESC, run_id DESC LIMIT 1""",
        [opts.model, opts.model],
    )
    if not rows:
        if lacking:
            pick_run(con, opts)  # no case at all passes the filters: that NoData says so
            raise NoData(lacking.format(filters=opts.describe()))
        raise NoData(f"no cases to draw in the store ({opts.describe()}){_models(con, opts)}")
    return rows[0]["run_id"]


def _models(con, opts: Options) -> str:
    """For an unknown --model, the model names there are (a swept case is named
    `spec[param=value]`, which a user cannot guess)."""
    if not opts.model or fetch(con, "SELECT 1 FROM results WHERE model_name = ?", [opts.model]):
        return ""
    names = [r["model_name"] for r in fetch(
        con, "SELECT DISTINCT model_name FROM results WHERE model_name IS NOT NULL ORDER BY 1"
    )]  # fmt: skip
    shown = ", ".join(map(repr, names[:20])) + (
        f" and {len(names) - 20} more" if len(names) > 20 else ""
    )
    return f": no model of that name; models: {printable(shown)}" if names else ""


# A readable, unique label for a case inside one run (labels are data, never markup).
# The name is cut in its middle to LABEL_MAX characters, its start and its end kept (a
# sweep point's `[vocab_size=128256]`), so that the whole label, with the backend and
# compute unit that tell rows apart, fits the axis' LABEL_LIMIT (Vega would cut the end);
# a label is also repeated in every sample point, so a huge name must not make a huge page.
LABEL_MAX = 40
_HEAD = (LABEL_MAX - 1) // 2
CASE_LABEL = f"""concat_ws(' · ',
    CASE WHEN length(coalesce(model_name, spec_name)) > {LABEL_MAX}
         THEN left(coalesce(model_name, spec_name), {_HEAD}) || '…'
              || right(coalesce(model_name, spec_name), {LABEL_MAX - 1 - _HEAD})
         ELSE coalesce(model_name, spec_name) END,
    backend, nullif(compute_units, ''), CASE WHEN backend = 'torch' THEN device END)"""


def selected_cases_sql(opts: Options, run_id: str, *, needs: str = "TRUE") -> tuple[str, list]:
    """SQL of the run's cases that pass the filters: case_id, label, and results columns."""
    sql = f"""SELECT *,
        lbl || CASE WHEN count(*) OVER (PARTITION BY lbl) > 1
                    THEN ' #' || CAST(case_index AS VARCHAR) ELSE '' END AS label
    FROM (SELECT *, {CASE_LABEL} AS lbl FROM results
          WHERE run_id = ? AND ({needs}) AND (? IS NULL OR model_name = ?)
            AND {where_sql(opts)}) AS r"""
    return sql, [run_id, opts.model, opts.model]


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, float) and v != v:
        return None
    return v
