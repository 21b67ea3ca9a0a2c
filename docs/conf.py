"""Sphinx configuration for faast_sklearn.

Build (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Benchmark results are read from ``benchmarks/results`` at every build (see
:func:`_write_benchmark_pages`), so the benchmarks page always shows the committed tables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
# Examples and doc builds never reach a model hub; plots render without a display.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import faast_sklearn  # noqa: E402

project = "faast_sklearn"
author = "faast_sklearn developers"
copyright = "2026, faast_sklearn developers"
release = faast_sklearn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated/*.rst", "**.ipynb_checkpoints"]
# Generated pages are pulled in with ``.. include::`` from benchmarks.rst.
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

# -- autodoc / autosummary / numpydoc ---------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False  # members are listed by the autosummary class template
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# No network at build time: intersphinx inventories are optional and never fetched here.
intersphinx_mapping: dict = {}
if os.environ.get("FAAST_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
    }

# -- sphinx-gallery ---------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # execute every plot_*.py
    "ignore_pattern": r"(demo\.py|__init__\.py)$",  # demo.py is a CLI script, not a gallery page
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "plot_gallery": "True",
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("faast_sklearn",),
    "reference_url": {"faast_sklearn": None},
}

# -- HTML -------------------------------------------------------------------------------------
html_theme = "alabaster"
html_theme_options = {
    "description": "Forward-only adaptation of pretrained models, as scikit-learn estimators",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_static_path: list[str] = []
html_title = f"faast_sklearn {release}"


# -- benchmark results ------------------------------------------------------------------------
RESULTS = ROOT / "benchmarks" / "results"
GENERATED = DOCS / "_generated"
_CODE = re.compile(r"`([^`]+)`")
_SPECIAL = re.compile(r"([\\*_|<>\[\]])")


def _inline(text: str) -> str:
    """Markdown inline text -> reStructuredText: code spans literal, the rest escaped."""
    out, last = [], 0
    for m in _CODE.finditer(text):
        out.append(_SPECIAL.sub(r"\\\1", text[last : m.start()]))
        code = m.group(1).strip()
        out.append(f"``{code}``" if code else "")
        last = m.end()
    out.append(_SPECIAL.sub(r"\\\1", text[last:]))
    return "".join(out).replace("**", "")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(rows: list[str]) -> list[str]:
    header = _cells(rows[0])
    body = [_cells(r) for r in rows[2:]]  # rows[1] is the |---| separator
    if not body:
        return ["*(no rows)*", ""]
    out = [".. list-table::", "   :header-rows: 1", "   :class: benchmark-table", ""]
    for row in [header, *body]:
        row = (row + [""] * len(header))[: len(header)]
        out.append(f"   * - {_inline(row[0]) or '..'}")
        out += [f"     - {_inline(c) or '..'}" for c in row[1:]]
    return [*out, ""]


def markdown_to_rst(md: str, levels: str = "-~^") -> str:
    """The small markdown subset of ``benchmarks/results/*.md``: headings, tables, lists."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out += ["", *_table(block)]
            continue
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading:
            level = min(len(heading.group(1)), len(levels)) - 1
            title = _inline(heading.group(2))
            out += ["", title, levels[level] * max(len(title), 4), ""]
        elif line.startswith("- "):
            out.append("- " + _inline(line[2:]))
        elif line.strip():
            out.append(_inline(line))
        else:
            out.append("")
        i += 1
    return "\n".join(out) + "\n"


_GROUPS = [
    ("solver", "Solver: fit and predict time against scikit-learn"),
    ("fewshot", "Few-shot episodes"),
    ("memory", "Inference memory against cache-based readers"),
    ("streaming", "Streaming"),
]


def _extraction_table() -> list[str]:
    runs = [(p.name, json.loads(p.read_text())) for p in sorted(RESULTS.glob("extraction-*.json"))]
    rows = []
    for name, data in runs:
        cfg, res, machine = data["config"], data["results"], data.get("machine", {})
        rows.append(
            [
                name,
                str(machine.get("device", "?")),
                f"{cfg.get('model', cfg.get('backbone'))}, {cfg.get('image_size')} px, "
                f"{cfg.get('resolved_precision')}",
                str(cfg.get("n_images")),
                f"{res['forward_images_per_s']:,.0f}",
                f"{res['extract_cold_cache_images_per_s']:,.0f}",
                f"{res['extract_warm_cache_images_per_s']:,.0f}",
                f"{res['fit_images_per_s']:,.0f}",
                f"{res['single_fit_s']:.2f}",
                f"{res['grid_search_s']:.1f}",
                str(res.get("grid_backbone_samples", "")),
            ]
        )
    if not rows:
        return []
    header = [
        "file",
        "device",
        "backbone",
        "images",
        "raw forward (img/s)",
        "extract, cold cache (img/s)",
        "extract, warm cache (img/s)",
        "fit incl. extraction (img/s)",
        "one fit (s)",
        "grid search (s)",
        "images through the backbone in the grid search",
    ]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    return [
        *_extraction_intro(),
        *_table(md),
        *_grid_routes_table(runs),
    ]


_GRID_ROUTES = [
    ("grid_to_fit_ratio", "224 px colour arrays"),
    ("grid_fold_copies_to_fit_ratio", "of which scikit-learn's fold copies alone"),
    ("lazyrows_grid_to_fit_ratio", "224 px colour arrays as `LazyRows` (copy included)"),
    ("grey28_grid_to_fit_ratio", "28 px grey arrays"),
    ("paths_grid_to_fit_ratio", "PNG files"),
    ("grid_on_features_to_fit_ratio", "extract once, search on NumPy features"),
    ("grid_on_device_features_to_fit_ratio", "extract once, search on a device tensor"),
]


def _grid_routes_table(runs) -> list[str]:
    """Grid search / one fit for every input form an extraction run measured."""
    runs = [(n, d["results"]) for n, d in runs if "grey28_grid_to_fit_ratio" in d["results"]]
    if not runs:
        return []
    md = ["| input | " + " | ".join(name for name, _ in runs) + " |", "|---|" + "---|" * len(runs)]
    for key, label in _GRID_ROUTES:
        cells = [f"{res[key]:.2f}" if key in res else "—" for _, res in runs]
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    return [
        "``GridSearchCV`` over 10 alphas x 5 folds, in single fits of the same input (cold "
        "caches; medians of repeated runs except for the plain 224 px arrays). The target is 1.5.",
        "",
        *_table(md),
    ]


def _extraction_intro() -> list[str]:
    return [
        "Feature extraction",
        "~" * 18,
        "",
        "Throughput of :class:`~faast_sklearn.features.FeatureExtractor` against the bare "
        "forward pass of the network, and a ``GridSearchCV`` whose candidates all reuse the "
        "cached features (the backbone sees each image once). Throughput does not depend on "
        "the weights, so runs without hub access use random ones. Generated from "
        "``benchmarks/results/extraction-*.json``; ``smoke`` files are tiny CPU runs that "
        "only check the script.",
        "",
    ]


def _write_benchmark_pages() -> None:
    """Turn ``benchmarks/results`` into ``_generated/benchmark_results.rst`` (+ images)."""
    if GENERATED.exists():
        shutil.rmtree(GENERATED)
    GENERATED.mkdir()
    body: list[str] = []
    md_files = sorted(RESULTS.glob("*.md"))
    used: set[Path] = set()
    for prefix, title in _GROUPS:
        group = [p for p in md_files if p.name.startswith(prefix + "-")]
        # Real runs first, CPU smoke runs (script checks) last.
        group.sort(key=lambda p: ("smoke" in p.name, p.name))
        if prefix == "solver":
            body += _extraction_table_after_solver(group, title, used)
            continue
        if not group:
            continue
        body += [title, "~" * len(title), ""]
        for path in group:
            body += _one_result(path, used)
    rest = [p for p in md_files if p not in used]
    if rest:
        body += ["Other results", "~" * 13, ""]
        for path in rest:
            body += _one_result(path, used)
    (GENERATED / "benchmark_results.rst").write_text("\n".join(body) + "\n")


def _extraction_table_after_solver(group, title, used) -> list[str]:
    body: list[str] = []
    if group:
        body += [title, "~" * len(title), ""]
        for path in group:
            body += _one_result(path, used)
    return body + _extraction_table()


def _one_result(path: Path, used: set[Path]) -> list[str]:
    used.add(path)
    text = markdown_to_rst(path.read_text(), levels="^\"'`")
    out = [
        f".. rubric:: ``benchmarks/results/{path.name}``",
        "",
        text,
    ]
    png = path.with_suffix(".png")
    if png.exists():
        shutil.copy2(png, GENERATED / png.name)
        out += [f".. image:: /_generated/{png.name}", f"   :alt: {png.stem}", "   :width: 90%", ""]
    return out


_write_benchmark_pages()


def _write_backbone_table() -> None:
    """``_generated/backbones_table.rst``: the registered backbones, read from the registry."""
    from faast_sklearn.backbones import get_backbone_meta, list_backbones

    md = ["| name | input | features | source | offline |", "|---|---|---|---|---|"]
    for name in list_backbones():
        meta = get_backbone_meta(name)
        md.append(
            f"| `{name}` | {meta.get('modality', '')} | {meta.get('n_features', '')} | "
            f"{meta.get('source', '')} | {'yes' if meta.get('offline') else 'no (hub)'} |"
        )
    (GENERATED / "backbones_table.rst").write_text("\n".join(_table(md)) + "\n")


_write_backbone_table()


# -- docstring guard --------------------------------------------------------------------------
_PAREN = re.compile(r"\(([^()`]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`])([A-Za-z]\w*_)(?![\w`])")


def _literal_fitted_names(app, what, name, obj, options, lines):
    """``shape (n_features_in_,)`` in a docstring: make ``n_features_in_`` a literal.

    In reStructuredText a word ending in ``_`` is a hyperlink reference, so a bare fitted
    attribute name inside a shape fails the build ("Unknown target name"). Runs before numpydoc.
    """

    def fix(m: re.Match) -> str:
        return "(" + _TRAILING_UNDERSCORE.sub(r"``\1``", m.group(1)) + ")"

    lines[:] = [_PAREN.sub(fix, line) for line in lines]


_SKLEARN_KEPT = {"get_params", "set_params"}


def _skip_sklearn_members(app, what, name, obj, skip, options):
    """Hide members inherited from scikit-learn, except get_params/set_params.

    ``score``, ``set_output`` and the metadata-routing methods are documented by scikit-learn,
    and their docstrings point into its own documentation (labels this build cannot resolve).
    """
    if what != "class" or name in _SKLEARN_KEPT:
        return None
    target = getattr(obj, "fget", obj)
    module = getattr(target, "__module__", None) or type(target).__module__
    if module.startswith("sklearn."):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _literal_fitted_names, priority=100)
    app.connect("autodoc-skip-member", _skip_sklearn_members)
