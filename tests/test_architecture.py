"""The package keeps the shape docs/architecture.rst draws, read from its source with ``ast``.

Rules of the code: modules under 500 lines, functions under 80 lines of code, no import
cycle, no other room's private names (and, but in ``analysis/``, none between siblings).
Rules of the page: its arrows are exactly the imports between rooms, each pointing to a
lower layer, every room is on it and in its drawing, and its sizes are current. After
changing the imports, ``python scripts/module_graph.py --write`` rewrites the page's
blocks (the drawing above them is redrawn by hand).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import io
import re
import sys
import tokenize
from itertools import pairwise
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "clothingclf"
PAGE = ROOT / "docs" / "architecture.rst"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
SIZE_TOLERANCE = 0.15


def _load_module_graph() -> ModuleType:
    """scripts/module_graph.py, the one reader of the imports (the page is printed by it)."""
    spec = importlib.util.spec_from_file_location("module_graph", ROOT / "scripts/module_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


graph = _load_module_graph()
MODULES = graph.find_modules(SRC)
IMPORTS = graph.all_imports(MODULES)


def _where(found: graph.Import) -> str:
    return f"{found.importer}:{found.line} ({found.where})"


# --- the code ---------------------------------------------------------------------------


def test_no_module_is_over_500_lines() -> None:
    long = {}
    for module in MODULES.values():
        lines = len(module.path.read_bytes().splitlines())
        if lines > MAX_MODULE_LINES:
            long[str(module.path.relative_to(SRC.parent))] = lines
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _code_lines(source: str) -> set[int]:
    """The lines that hold code: not blank, not only a comment (a string counts on every
    line it spans)."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    skip |= {tokenize.ENCODING, tokenize.ENDMARKER}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """Every function with its qualified name, nested ones included."""
    found: list[tuple[str, ast.AST]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((prefix + node.name, node))
            found += _functions(node, f"{prefix}{node.name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
        else:
            found += _functions(node, prefix)
    return found


def function_lengths(source: str) -> dict[str, tuple[int, int]]:
    """Each function's qualified name -> (its line, its lines of code from the ``def`` line
    to its end, without blank lines, comments and its docstring). A nested function counts
    inside its parent and on its own."""
    tree = ast.parse(source)
    code = _code_lines(source)
    lengths = {}
    for name, node in _functions(tree):
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1)) & code
        if ast.get_docstring(node, clean=False) is not None:
            docstring = node.body[0]
            lines -= set(range(docstring.lineno, (docstring.end_lineno or 0) + 1))
        lengths[name] = (node.lineno, len(lines))
    return lengths


def test_function_lengths_count_code_only() -> None:
    source = '''
def outer(x):
    """A docstring
    of three lines.
    """
    # a comment

    def inner():
        return (
            1
        )

    return inner() + x
'''
    assert function_lengths(source) == {"outer": (2, 6), "outer.<locals>.inner": (8, 4)}


def test_no_function_is_over_80_lines_of_code() -> None:
    long = []
    for module in MODULES.values():
        lengths = function_lengths(module.path.read_text(encoding="utf-8"))
        for name, (line, length) in lengths.items():
            if length > MAX_FUNCTION_LINES:
                long.append(f"{module.name}.{name} (line {line}): {length} lines of code")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code:\n" + "\n".join(long)


def _path(edges: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A shortest path of imports from ``start`` to ``goal``, if there is one."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, ())):
                if nxt == goal:
                    return [*paths[node], goal]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    return None


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Cycles that together hold every import on a cycle: for each such import ``a -> b``
    not yet on a cycle listed, ``a`` then a shortest path from ``b`` back to ``a``."""
    cycles: list[list[str]] = []
    covered: set[tuple[str, str]] = set()
    for source in sorted(edges):
        for target in sorted(edges[source]):
            if (source, target) in covered:
                continue
            back = [target] if target == source else _path(edges, target, source)
            if back is not None:
                cycle = [source, *back]
                covered.update(pairwise(cycle))
                cycles.append(cycle)
    return cycles


def test_cycles_are_found() -> None:
    edges = {"a": {"b"}, "b": {"c", "e"}, "c": {"a", "d"}, "d": set(), "e": {"e", "b"}}
    assert _cycles(edges) == [["a", "b", "c", "a"], ["b", "e", "b"], ["e", "e"]]


def test_no_import_cycle() -> None:
    """Every import counts, under ``if TYPE_CHECKING:`` and inside functions too."""
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for found in IMPORTS:
        edges.setdefault(found.importer, set()).add(found.target)
        where.setdefault((found.importer, found.target), _where(found))
    cycles = [
        " -> ".join(where[a, b] for a, b in pairwise(cycle)) + f" -> {cycle[-1]}"
        for cycle in _cycles(edges)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def private_offences(found: graph.Import) -> list[str]:
    """Why an import takes a private name it should not, if it does.

    A private module (``clothingclf._kinds``, ``analysis._records``) is for the modules of
    the package that holds it; a private name of a module (or of a package's
    ``__init__.py``) is for the modules of its room: the siblings of a package share, a
    top-level module shares with nobody. Inside a package no module takes a private name
    from another (underscore means private to the module), but in ``analysis/``, whose
    private modules (``_field_state``, ``_rules_*``) share the tracer's internals.
    """
    parts = found.full.split(".")
    offences = []
    for at, part in enumerate(parts):
        if at == 0 or not _private(part):
            continue
        owner = ".".join(parts[:at])
        if ".".join(parts[: at + 1]) in MODULES:  # a private module
            allowed, sibling = _inside(found.importer, owner), False
        else:  # a private name of a module
            allowed = graph.room_of(found.importer) == graph.room_of(owner)
            sibling = not _inside(found.importer, "clothingclf.analysis")
        if not allowed:
            offences.append(f"{_where(found)} imports {found.full}, private to {owner}")
        elif sibling:
            offences.append(f"{_where(found)} imports {found.full} from a sibling")
    return offences


def test_private_offences_are_found() -> None:
    def offences(importer: str, full: str) -> list[str]:
        target = graph.longest_module(full, MODULES)
        return private_offences(graph.Import(importer, full, target, 1, "module"))

    assert not offences("clothingclf.settings", "clothingclf._kinds.Number")
    assert not offences("clothingclf.analysis.fields", "clothingclf.analysis._records.x")
    assert not offences("clothingclf.analysis.fields", "clothingclf.analysis.flops._x")
    assert offences("clothingclf.report.pages", "clothingclf.analysis._records.x")
    assert offences("clothingclf.classifier", "clothingclf.settings._x")
    assert offences("clothingclf.training.loop", "clothingclf.training.steps._x")
    assert offences("clothingclf.training.loop", "clothingclf.checkpoint.files._x")
    assert offences("clothingclf.training.loop", "clothingclf.training._x")
    assert offences("clothingclf.cli", "clothingclf._x")
    assert offences("clothingclf.cli.train", "clothingclf.cli._x")
    assert offences("clothingclf.cli.train", "clothingclf.cli.shared._x")
    assert not offences("clothingclf.analysis.fields", "clothingclf.analysis._records._x")


def test_no_private_name_crosses_a_room() -> None:
    offences = [offence for found in IMPORTS for offence in private_offences(found)]
    assert not offences, "private names imported:\n" + "\n".join(offences)


# --- the page ---------------------------------------------------------------------------


@functools.cache
def _page_blocks() -> tuple[dict[str, tuple[int, int]], dict[str, set[str]], str]:
    """The page's rooms (name -> layer, lines), its arrows and its drawing, by full name."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.index("Layers, bottom to top:")
    rooms = {
        graph.room_named(name): (int(layer), int(lines))
        for layer, name, lines in re.findall(
            r"^ +(\d+) +([\w.]+) +(\d+)$", text[start : text.index("Arrows:", start)], re.M
        )
    }
    block = []
    for line in text[text.index("Arrows:", start) + len("Arrows:") :].splitlines()[1:]:
        if line and not line.startswith(" "):
            break
        block.append(line)
    arrows: dict[str, set[str]] = {}
    source = ""
    for line in block:
        if "->" in line:
            source, _, line = (part.strip() for part in line.partition("->"))
            arrows[graph.room_named(source)] = set()
        names = {name.strip() for name in line.split(",")} - {""}
        if names:
            arrows[graph.room_named(source)] |= {graph.room_named(name) for name in names}
    drawing_start = text.index(".. code-block:: text", text.index("The rooms\n"))
    return rooms, arrows, text[drawing_start:start]


CODE_ARROWS = graph.room_arrows(IMPORTS)
CODE_ROOMS = {graph.room_of(name) for name in MODULES}


def _example(source: str, target: str) -> str:
    found = next(
        found
        for found in IMPORTS
        if graph.room_of(found.importer) == source and graph.room_of(found.target) == target
    )
    return f"{_where(found)} imports {found.full}"


def test_page_lists_every_room() -> None:
    page_rooms, _, _ = _page_blocks()
    assert set(page_rooms) == CODE_ROOMS, (
        f"rooms missing from the page: {sorted(CODE_ROOMS - set(page_rooms))}; "
        f"rooms on the page that the code lacks: {sorted(set(page_rooms) - CODE_ROOMS)}"
    )


def test_every_arrow_on_the_page_exists() -> None:
    _, page_arrows, _ = _page_blocks()
    missing = [
        f"{source} -> {target}"
        for source, targets in page_arrows.items()
        for target in sorted(targets)
        if target not in CODE_ARROWS.get(source, set())
    ]
    assert not missing, "arrows on the page that no import makes:\n" + "\n".join(missing)


def test_every_import_between_rooms_is_on_the_page() -> None:
    _, page_arrows, _ = _page_blocks()
    missing = [
        f"{source} -> {target}: {_example(source, target)}"
        for source, targets in CODE_ARROWS.items()
        for target in sorted(targets)
        if target not in page_arrows.get(source, set())
    ]
    assert not missing, "imports between rooms the page lacks:\n" + "\n".join(missing)


def test_every_arrow_points_to_a_lower_layer() -> None:
    """The page's layers order the rooms: a room imports only rooms of lower layers, never
    one of its own layer or above (so the rooms cannot import each other in a circle)."""
    page_rooms, page_arrows, _ = _page_blocks()
    layer = {room: stated for room, (stated, _) in page_rooms.items()}
    upward = [
        f"{source} (layer {layer[source]}) -> {target} (layer {layer[target]})"
        for source, targets in page_arrows.items()
        for target in sorted(targets)
        if source in layer and target in layer and layer[target] >= layer[source]
    ]
    assert not upward, "arrows that do not point down:\n" + "\n".join(upward)


def test_page_sizes_are_current() -> None:
    page_rooms, _, _ = _page_blocks()
    sizes = graph.room_sizes(MODULES)
    stale = [
        f"{room}: page {stated}, code {sizes[room]}"
        for room, (_, stated) in page_rooms.items()
        if room in sizes and abs(stated - sizes[room]) > SIZE_TOLERANCE * sizes[room]
    ]
    assert not stale, (
        f"sizes off by more than {SIZE_TOLERANCE:.0%} (python scripts/module_graph.py --write):\n"
        + "\n".join(stale)
    )


def test_drawing_shows_every_room() -> None:
    """Each room appears in the drawing by its file name: ``cli/``, ``classifier.py``."""
    _, _, drawing = _page_blocks()
    absent = []
    for room in sorted(CODE_ROOMS):
        name = graph.page_name(room)
        package = MODULES[room].is_package and room != "clothingclf"
        shown = f"{name}/" if package else f"{name}.py"
        if not re.search(rf"(?<![\w.]){re.escape(shown)}", drawing):
            absent.append(shown)
    assert not absent, f"rooms the drawing of 'The rooms' lacks: {absent}"
