"""Layering rules read from the source with ``ast``: tokenization imports nothing from the core, the model
modules import one another without a cycle, and no code outside tokenization names a token offset (the
notes type, ``amt.tokenization.notes``, does that arithmetic). Each rule is also run on a small bad example,
so a rule that stopped seeing anything would fail here rather than pass quietly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of the modules that ``source`` (a module of ``package``) imports, anywhere in it
    (top level or inside functions); relative imports are resolved against ``package``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            # ``from amt.models import loading`` imports the module amt.models.loading.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def core_imports(source: str) -> set[str]:
    """The modules of amt outside amt.tokenization that a tokenization module imports."""
    return {name for name in imported_modules(source, "amt.tokenization")
            if (name == "amt" or name.startswith("amt.")) and not (
                name == "amt.tokenization" or name.startswith("amt.tokenization."))}


def test_tokenization_imports_nothing_from_the_core():
    offenders = {path.name: sorted(core_imports(path.read_text()))
                 for path in sorted((ROOT / "tokenization").glob("*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_core_import_rule_sees_bad_imports():
    assert core_imports("from amt.errors import MidiError") == {"amt.errors", "amt.errors.MidiError"}
    assert "amt.fileio" in core_imports("def f():\n    import amt.fileio\n")
    assert "amt" in core_imports("from .. import fileio")
    assert core_imports("from amt.tokenization import ops\nfrom .vocab import REST\nimport numpy") == set()


def model_import_graph(folder: Path) -> dict[str, set[str]]:
    """Module name -> the other modules of ``folder``'s package that it imports (anywhere in the file)."""
    modules = {path.stem: path.read_text() for path in folder.glob("*.py") if path.stem != "__init__"}
    prefix, graph = "amt.models.", {}
    for name, source in modules.items():
        found = {module.removeprefix(prefix) for module in imported_modules(source, "amt.models")}
        graph[name] = (found & set(modules)) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of ``graph`` found by depth-first search, each as the path that closes it."""
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node):], node])
            return
        if node in done:
            return
        for successor in sorted(graph.get(node, ())):
            visit(successor, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_models_have_no_import_cycle():
    graph = model_import_graph(ROOT / "amt" / "models")
    assert {"base", "gpt", "loading"} <= set(graph)
    assert cycles(graph) == []


def test_cycle_finder_sees_a_lazy_import_cycle(tmp_path):
    (tmp_path / "base.py").write_text("def save(self):\n    from amt.models.loading import save\n")
    (tmp_path / "loading.py").write_text("from amt.models import base\n")
    assert cycles(model_import_graph(tmp_path)) == [["base", "loading", "base"]]


OFFSET = re.compile(r"^(A?(TIME|DUR|NOTE)|CONTROL)_OFFSET$")
"""The offsets of ``amt.tokenization.vocab`` that turn values into tokens (SPECIAL_OFFSET only marks where
the special tokens start)."""
OFFSET_FOLDERS = ("amt", "training", "plugins", "demo", "bench")
"""Everything outside tokenization/ that ships or measures code (tests build raw tokens on purpose)."""
OFFSETS_ALLOWED = (
    "amt/sampling/masks.py",  # the sampler's masks work on vocabulary blocks by design
)


def offset_lines(source: str) -> list[int]:
    """Lines of ``source`` that import or use a token offset constant (a module that names one is about
    to add or subtract it)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [alias.name.rsplit(".", 1)[-1] for alias in node.names]
        if any(OFFSET.match(name) for name in names):
            lines.add(node.lineno)
    return sorted(lines)


def test_only_tokenization_does_offset_arithmetic():
    found = {}
    for folder in OFFSET_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if not name.startswith(OFFSETS_ALLOWED) and (lines := offset_lines(path.read_text())):
                found[name] = lines
    assert found == {}, "use amt.tokenization.notes instead of token offsets"


def test_offset_rule_sees_offset_arithmetic():
    assert offset_lines("onsets = events[:, 0] - TIME_OFFSET") == [1]
    assert offset_lines("import numpy\n\nx = vocab.ANOTE_OFFSET + 1") == [3]
    assert offset_lines("from amt.tokenization.vocab import DUR_OFFSET as D") == [1]
    assert offset_lines("from amt.tokenization.notes import onset_ticks\nx = onset_ticks(e) + MAX_TIME") == []
