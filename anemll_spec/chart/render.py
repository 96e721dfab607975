"""Writing charts: offline HTML (Vega inlined, SVG renderer), PNG, SVG, Vega-Lite JSON.

The HTML inlines vl-convert's bundle of Vega, Vega-Lite and vega-embed, so a page opens
anywhere with no network. Building that bundle costs about a second, so it is kept in
the cache directory, keyed by the vl-convert and Vega-Lite versions.
"""

from __future__ import annotations

import contextlib
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anemll_spec.chart.style import esc
from anemll_spec.paths import write_file
from anemll_spec.text import printable

if TYPE_CHECKING:
    from anemll_spec.chart.render_worker import Worker

VL_VERSION = "6.4"  # the Vega-Lite schema Altair 6 writes; vl-convert ships it
PNG_SCALE = 2
_bundle_memo: dict[str, str] = {}


def cache_dir() -> Path:
    """anemll-spec's cache folder ($ANEMLL_SPEC_CACHE, else the XDG cache)."""
    from anemll_spec.paths import default_cache_dir

    return default_cache_dir()


def vega_bundle() -> str:
    """The JavaScript that defines window.vegaEmbed (memoised, and cached on disk)."""
    import vl_convert as vlc

    key = f"{getattr(vlc, '__version__', 'unknown')}-vl{VL_VERSION}"
    if key in _bundle_memo:
        return _bundle_memo[key]
    path = cache_dir() / "vega" / f"vega-bundle-{key}.js"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        # the stub marks `snippet` required; the runtime defaults it (the documented call)
        text = vlc.javascript_bundle(vl_version=VL_VERSION)  # type: ignore[call-arg]
        # a read-only home only costs the next process a second
        with contextlib.suppress(OSError):
            write_file(path, text)
    _bundle_memo[key] = text
    return text


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</script>' or '<!--' can end it early."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def embed_script(charts: dict[str, dict]) -> str:
    """The <script> that draws every chart into its <div id=...> with the SVG renderer.

    A chart that fails to render shows its error as text in its place.
    """
    return (
        "<script>\n(function () {\n"
        f"  const charts = {script_json(charts)};\n"
        "  for (const [id, spec] of Object.entries(charts)) {\n"
        "    const el = document.getElementById(id);\n"
        "    vegaEmbed(el, spec, {renderer: 'svg', actions: false})\n"
        "      .then(() => el.setAttribute('data-rendered', 'true'))\n"
        "      .catch((err) => { el.textContent = 'chart failed to render: ' + err;\n"
        "                        el.setAttribute('data-rendered', 'error'); });\n"
        "  }\n})();\n</script>"
    )


PAGE_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
.note { background: #fff8e1; border-left: 4px solid #E69F00; padding: 6px 10px; margin: 8px 0; }
.muted { color: #666; font-size: 12px; }
.chart { margin: 12px 0 28px 0; overflow-x: auto; }
"""


def page(title: str, body: str, charts: dict[str, dict], head: str = "") -> str:
    """A complete offline HTML page: `body` (already escaped HTML) plus the charts.

    `charts` maps element ids present in `body` to Vega-Lite specs; `head` is extra
    (already escaped) HTML for <head>, placed first so it is found near the start.
    """
    script = ""
    if charts:
        bundle = vega_bundle().replace("</script", "<\\/script")
        script = f"<script>{bundle}</script>\n{embed_script(charts)}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"{head}"
        f"<title>{esc(title)}</title>\n"
        # Offline by construction: nothing may be fetched, whatever the data says.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<style>{PAGE_CSS}</style>\n</head>\n<body>\n{body}\n{script}\n</body>\n</html>\n"
    )


CHART_FILES = {"html": ".html", "png": ".png", "svg": ".svg", "json": ".vl.json"}
WRITTEN_TOGETHER_S = 120.0  # a chart's four files are written within this of each other


def generator(name: str) -> str:
    """The <meta> that marks NAME.html as this command's chart of kind NAME."""
    return f'<meta name="generator" content="anemll-spec chart {html.escape(name)}">\n'


def chart_html(spec: dict, title: str, name: str) -> str:
    """One chart as a page of its own, marked as this command's chart of kind `name` (so
    a later chart of that kind may replace it, and nothing else)."""
    return page(title, '<div id="chart" class="chart"></div>', {"chart": spec}, generator(name))


def foreign_files(out_dir: Path, name: str) -> list[Path]:
    """The files a chart would write over that are not an earlier chart's: any of
    NAME.{html,png,svg,vl.json} there, unless NAME.html is our chart of that kind and
    each other file was written with it (a user's PNG beside our page is not ours)."""
    paths = [out_dir / f"{name}{suffix}" for suffix in CHART_FILES.values()]
    there = [p for p in paths if p.exists()]
    try:
        with open(paths[0], "rb") as f:
            ours = generator(name) in f.read(4096).decode("utf-8", "replace")
        written = paths[0].stat().st_mtime
    except OSError:
        return there
    if not ours:
        return there
    return [p for p in there[1:] if abs(p.stat().st_mtime - written) > WRITTEN_TOGETHER_S]


def draw(spec: dict | str) -> tuple[str, bytes]:
    """The chart as SVG and as PNG (twice the SVG's size, for high-density screens).
    vl-convert is handed the spec as JSON text (`spec_text`), here and in the render
    worker alike, so both accept and refuse exactly the same specs."""
    import vl_convert as vlc

    text = spec if isinstance(spec, str) else spec_text(spec)
    svg = vlc.vegalite_to_svg(text, vl_version=VL_VERSION)
    return svg, vlc.svg_to_png(svg, scale=PNG_SCALE)


def spec_text(spec: dict) -> str:
    """The spec as one line of JSON: what vl-convert and the render worker receive."""
    return json.dumps(spec)


def warm_up() -> None:
    """Start what `draw` needs (the JavaScript engine, this Vega-Lite version, the fonts)
    on a one-word chart: a process's first render pays ~0.4 s for it."""
    draw({"mark": "text", "encoding": {"text": {"value": "warm"}}})


def write_chart(
    spec: dict, out_dir: Path, name: str, title: str, worker: Worker | None = None
) -> dict[str, Path]:
    """Write NAME.html, NAME.png, NAME.svg and NAME.vl.json; returns format -> path.
    `worker`: a render_worker.Worker started earlier draws the SVG and PNG.

    Control characters from stored text are escaped everywhere in the spec first: XML
    forbids them, and the SVG -> PNG step aborts the process on one (not an exception)."""
    spec = printable_strings(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {fmt: out_dir / f"{name}{suffix}" for fmt, suffix in CHART_FILES.items()}
    svg, png = worker.draw(spec) if worker is not None else draw(spec)
    write_file(files["html"], chart_html(spec, title, name))
    write_file(files["svg"], svg)
    write_file(files["png"], png)
    write_file(files["json"], json.dumps(spec, indent=2, default=str) + "\n")
    return files


def printable_strings(value: Any) -> Any:
    """`value` with every string (keys too, so field references still match) escaped."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_strings(k): printable_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_strings(v) for v in value]
    return value
