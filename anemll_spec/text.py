"""Text from outside (stored names, bundle fields, error messages quoting them) as it may
be shown to a person: control characters escaped, never sent raw to a terminal."""

from __future__ import annotations


def printable(text: object) -> str:
    """`text` with control characters (newline, tab, ESC, ...) shown as escapes, so a
    hostile label cannot move the cursor, recolour the screen or forge a line."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def quoted(value: object, limit: int = 60) -> str:
    """`value` quoted for a message (as repr), control characters escaped, cut to `limit`
    characters (an ellipsis marks the cut): a hostile value can neither reach a terminal
    raw nor flood the line."""
    text = printable(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def brief(value: object, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters (an ellipsis marks the cut): a value echoed
    in a message is a pointer to it, not a copy (an aliased 100 KB string, swept 2,000
    times, wrote 200 MB of errors)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def path_word(path: object) -> str:
    """A store path as a printed command's argument: a relative one starting with '-'
    gets './' (argparse read `--store -dash.duckdb` as a missing value and another
    option). Quote it for a shell after this."""
    text = str(path)
    return "./" + text if text.startswith("-") else text


def human_bytes(n: float | None) -> str:
    """Bytes in decimal units (1 KB = 1000 B): the CLI's tables and the build's refusals."""
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return str(n)


def middle_cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: a longer one keeps its start and its end,
    an ellipsis between (a sweep's values, at the end of a case's name, stay readable)."""
    if len(text) <= limit:
        return text
    if limit < 2:
        return "…"[:limit]
    head = limit // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def did_you_mean(key: object, allowed: list[str]) -> str:
    """The hint after an unknown name: the closest allowed one, else all of them."""
    match = closest(str(key), allowed)
    return f"; did you mean '{match}'?" if match else f"; allowed: {', '.join(allowed)}"


def closest(word: str, allowed: list[str]) -> str | None:
    """The allowed name `word` most likely means, over all of them: one it starts with or
    that starts with it (`warmups`, `warmup_iterations` -> `warmup`), then one it ends
    with or that ends with it (`precision` -> `compute_precision`), then one sharing a
    word (`iteration_count` -> `iterations`), then difflib's closest; within a tier, the
    most similar. Affixes under 3 letters and words under 4 count for nothing
    (`s`, `min`)."""
    import difflib

    def ratio(name: str) -> float:
        return difflib.SequenceMatcher(None, word, name).ratio()

    def words(name: str) -> set[str]:
        return {w for w in name.split("_") if len(w) >= 4}  # not `min`, `max`

    def same_word(a: str, b: str) -> bool:  # `iteration` and `iterations`
        return a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))

    def affix(name: str, test: str) -> bool:
        short, long = sorted((word, name), key=len)
        return len(short) >= 3 and getattr(long, test)(short)

    tiers = (
        [c for c in allowed if affix(c, "startswith")],
        [c for c in allowed if affix(c, "endswith")],
        [c for c in allowed if any(same_word(a, b) for a in words(word) for b in words(c))],
        difflib.get_close_matches(word, allowed, n=1),
    )
    tier = next((t for t in tiers if t), [])
    return max(tier, key=ratio) if tier else None


def ratios(*values: float | None) -> list[str]:
    """A ratio near 1, and its CI's ends, with as many decimals (3 to 6) as keep unequal
    figures apart, the ratio from each end included, and each figure apart from 1:
    '1.000 – 1.000' hid a CI [1.00012, 1.00035] that excludes 1, and '1.006 [1.005, 1.006]'
    put a ratio of 1.00585 on its CI's upper end (1.00619)."""
    known = [v for v in values if v is not None and v == v]
    firsts = [v for v in values[:3] if v is not None and v == v]
    pairs = [(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1 :] if a != b]
    digits = 3
    while digits < 6:
        one = f"{1:.{digits}f}"
        apart = all(f"{a:.{digits}f}" != f"{b:.{digits}f}" for a, b in pairs)
        if apart and all(f"{v:.{digits}f}" != one for v in known if v != 1):
            break
        digits += 1
    return ["–" if v is None or v != v else f"{v:.{digits}f}" for v in values]


def aligned(header: list[str], cells: list[list[str]], numeric: list[bool]) -> list[str]:
    """A text table's lines: the header, a rule, then the rows; columns padded to their
    widest cell, numeric ones right-aligned (not the header), trailing blanks cut. Cells
    are text already formatted (the callers differ in how they show None and floats);
    the header is escaped here."""
    header = [printable(h) for h in header]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]

    def line(values: list[str], is_header: bool = False) -> str:
        parts = [
            v.rjust(w) if numeric[i] and not is_header else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(header, True), "  ".join("-" * w for w in widths), *(line(r) for r in cells)]


def throttled_words(value: bool | None) -> str:
    """A sustained case's thermal reading in words (report, chart and share alike)."""
    if value is None:
        return "throttling not read (no thermal reading)"
    return "throttled" if value else "not throttled"


def sig(x: float | None, digits: int = 3) -> str:
    """Significant digits, not decimals: 0.000359 stays readable (not '0.00'), and a
    figure of `digits` or more integer digits prints whole (2877, not '2.88e+03')."""
    if x is None or x != x:
        return "-"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def figure(value: float, digits: int) -> str:
    """A finite float as the report and share write it: `digits` significant digits, and
    from 10**digits on whole, with thousands separators (10,603 inferences/s, not
    '1.06e+04'), up to 10**15: beyond, a float's whole digits are noise
    (3.3e25 is 33,000,000,000,000,001,056,964,608), so e-notation. Decided on the value
    as `digits` digits round it: 9999.7 at 4 is 10,000 (tested unrounded, it printed
    '1e+04', one significant digit)."""
    if 10**digits <= abs(float(f"{value:.{digits}g}")) < WHOLE_BELOW:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


WHOLE_BELOW = 1e15  # a float64 holds every integer below 2**53 (~9.0e15) exactly


def distinct(values: tuple[float, ...], least: int = 3, most: int = 6) -> list[str]:
    """The values with as many significant digits (`least` to `most`) as keep unequal
    ones apart: two medians 40 ns apart must not both print '0.1'."""
    pairs = [(i, j) for i in range(len(values)) for j in range(i + 1, len(values))]
    for digits in range(least, most + 1):
        text = [sig(v, digits) for v in values]
        if all(text[i] != text[j] for i, j in pairs if values[i] != values[j]):
            break
    return text


def with_ci(median: float, low: float | None, high: float | None) -> str:
    """'0.01051 [0.01049, 0.01053]': as many significant digits (3 to 6) as keep the
    median and the CI's ends apart, so a tight CI does not read as wide or one-sided;
    '0.0105 [no CI]' where there is none (too few samples)."""
    if low is None or high is None:
        return f"{sig(median, 4)} [no CI]"
    m, lo, hi = distinct((median, low, high))
    return f"{m} [{lo}, {hi}]"


def store_line(raw: str, limit: int = 256) -> str:
    """A fact the OS hands over (hostname, os-release, cpuinfo) as one line the store
    takes: bytes that are no UTF-8 (which Python passes on as lone surrogates, and DuckDB
    cannot bind) shown as \\xNN, control characters escaped (the store refuses them, a
    terminal would obey them), cut to `limit` (the store's name limit, columns.NAME).
    Deterministic: one machine's name reads the same in every row and every process."""
    text = printable(undecodable_as_hex(raw))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def undecodable_as_hex(text: str) -> str:
    """`text` with the bytes that were no UTF-8 (lone surrogates, as Python passes on a
    file name's or an OS name's bytes) written \\xNN: DuckDB cannot bind a surrogate."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
