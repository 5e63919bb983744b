#!/usr/bin/env python3
"""Print the rooms of clothingclf, their layers, sizes and arrows, read from the imports.

A *room* is a top-level module (``clothingclf.classifier``), a top-level subpackage as a
whole (``clothingclf.training``), or the package's own ``__init__.py`` (``clothingclf``).
An *arrow* runs from room A to room B when some module of A imports some module of B, at
any place: module level, under ``if TYPE_CHECKING:`` or inside a function. A room's layer
is the length of its longest chain of arrows down to a room that imports no other (layer 0),
so every arrow points to a strictly lower layer. Sizes are physical lines (``wc -l``).

The output is the "Layers, bottom to top" and "Arrows" blocks of
``docs/architecture.rst``. After changing the imports, ``--write`` puts it on the page in
place of the old one, and ``tests/test_architecture.py`` agrees again (redraw the drawing
above it if a room moved):

    python scripts/module_graph.py            # print the blocks
    python scripts/module_graph.py --write    # rewrite them in docs/architecture.rst

The reading of the imports lives here, once; the test imports this file.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "clothingclf"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE
PAGE = Path(__file__).resolve().parents[1] / "docs" / "architecture.rst"


@dataclass(frozen=True)
class Module:
    """One file of the package: ``clothingclf.training.loop`` or ``clothingclf.training``."""

    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package whose relative imports start here (itself for an ``__init__``)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    """One imported name, resolved.

    ``full`` is the dotted name as imported (``clothingclf.training.steps.validate``);
    ``target`` the module it comes from, the longest prefix of ``full`` that is a module
    (``clothingclf.training.steps``); ``where`` is ``"module"``, ``"type-checking"`` or
    ``"function"``.
    """

    importer: str
    full: str
    target: str
    line: int
    where: str


def find_modules(src: Path = SRC) -> dict[str, Module]:
    """Every ``.py`` file under ``src``, by dotted name."""
    modules = {}
    for path in sorted(src.rglob("*.py")):
        parts = [src.name, *path.relative_to(src).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Each import statement with where it sits; ``function`` wins over ``type-checking``."""

    def visit(node: ast.AST, where: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, where
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            where = "function"
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                yield from visit(statement, "function" if where == "function" else "type-checking")
            for statement in node.orelse:
                yield from visit(statement, where)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, where)

    return visit(tree, "module")


def longest_module(name: str, modules: dict[str, Module]) -> str:
    """The longest prefix of the dotted ``name`` that is a module of ``modules``."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: Module, modules: dict[str, Module]) -> list[Import]:
    """The names ``module`` imports from the package, each resolved to its module.

    ``from . import x`` in package ``p`` takes ``p.x`` if that is a module, else the name
    ``x`` of ``p/__init__.py`` (an import of ``p``); ``from .x import y`` takes ``p.x.y``
    if that is a module, else the name ``y`` of ``p.x``.
    """
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    found = []
    for node, where in _import_nodes(tree):
        if isinstance(node, ast.Import):
            fulls = [alias.name for alias in node.names]
        else:
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - node.level + 1]
                base_name = ".".join([*base, node.module] if node.module else base)
            else:
                base_name = node.module or ""
            fulls = [f"{base_name}.{alias.name}" for alias in node.names]
        for full in fulls:
            if full == PACKAGE or full.startswith(PACKAGE + "."):
                target = longest_module(full, modules)
                found.append(Import(module.name, full, target, node.lineno, where))
    return found


def all_imports(modules: dict[str, Module] | None = None) -> list[Import]:
    """The imports of every module of the package, the module's own name dropped."""
    modules = modules if modules is not None else find_modules()
    return [
        found
        for module in modules.values()
        for found in imports_of(module, modules)
        if found.target != module.name
    ]


def room_of(name: str) -> str:
    """``clothingclf.training.loop`` -> ``clothingclf.training``; ``clothingclf`` stays."""
    return ".".join(name.split(".")[:2])


def room_sizes(modules: dict[str, Module] | None = None) -> dict[str, int]:
    """Each room's physical lines, all its files together (``wc -l``)."""
    modules = modules if modules is not None else find_modules()
    sizes: dict[str, int] = defaultdict(int)
    for module in modules.values():
        with module.path.open("rb") as file:
            sizes[room_of(module.name)] += sum(1 for _ in file)
    return dict(sizes)


def room_arrows(imports: list[Import]) -> dict[str, set[str]]:
    """Room -> the other rooms it imports from."""
    arrows: dict[str, set[str]] = defaultdict(set)
    for found in imports:
        source, target = room_of(found.importer), room_of(found.target)
        if source != target:
            arrows[source].add(target)
    return dict(arrows)


def layers(rooms: set[str], arrows: dict[str, set[str]]) -> dict[str, int]:
    """Each room's longest chain of arrows down to a room that imports no other.

    Raises:
        ValueError: the arrows run in a circle (the rooms on it are named).
    """
    layer: dict[str, int] = {}
    visiting: list[str] = []

    def visit(room: str) -> int:
        if room in layer:
            return layer[room]
        if room in visiting:
            circle = [*visiting[visiting.index(room) :], room]
            raise ValueError("the arrows run in a circle: " + " -> ".join(circle))
        visiting.append(room)
        layer[room] = 1 + max((visit(below) for below in arrows.get(room, ())), default=-1)
        visiting.pop()
        return layer[room]

    for room in sorted(rooms):
        visit(room)
    return layer


def page_name(room: str) -> str:
    """A room's name on the page: ``clothingclf.engines`` -> ``engines``, ``clothingclf`` ->
    ``__init__``."""
    return "__init__" if room == PACKAGE else room.removeprefix(PACKAGE + ".")


def room_named(name: str) -> str:
    """The room a page name stands for: the inverse of :func:`page_name`."""
    return PACKAGE if name == "__init__" else f"{PACKAGE}.{name}"


def render() -> str:
    """The page's two blocks: rooms by layer with their sizes, then the arrows."""
    modules = find_modules()
    sizes = room_sizes(modules)
    arrows = room_arrows(all_imports(modules))
    layer = layers(set(sizes), arrows)
    order = sorted(sizes, key=lambda room: (layer[room], page_name(room)))
    width = max(len(page_name(room)) for room in sizes) + 2
    table = [f"{'layer':<7}{'room':<{width}}lines"]
    table += [f"{layer[room]:<7}{page_name(room):<{width}}{sizes[room]:>5}" for room in order]
    lines = [
        textwrap.fill(
            f"{page_name(room)} -> {', '.join(sorted(map(page_name, arrows[room])))}",
            width=88,
            subsequent_indent=" " * (len(page_name(room)) + 4),
            break_on_hyphens=False,
        )
        for room in order
        if room in arrows
    ]
    return "\n".join(["Layers, bottom to top:", "", *table, "", "Arrows:", "", *lines])


def write_page(page: Path = PAGE) -> None:
    """Replace the page's generated blocks (from ``Layers, bottom to top:`` to the end of
    that code block) with :func:`render`'s."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Layers, bottom to top:")
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent)):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    block = [indent + line if line else "" for line in render().splitlines()]
    page.write_text("\n".join([*lines[:start], *block, *lines[end:]]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_page()
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--write]")
    else:
        print(render())
