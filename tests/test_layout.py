"""The package's structure, checked statically: layers that import downwards only (commands → the runner → the
trainer → data, models, the Hub → losses and plain helpers), no import cycle between its modules — imports inside
functions included, so a cycle cannot hide in a lazy import —, no module that nothing but the tests imports, no
function longer than ~80 lines without a comment saying why."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_w2s"
ROOT = PACKAGE.parent
MAX_LINES = 80


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path, top_level_only: bool) -> set[str]:
    """The hf_w2s modules ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here[: len(here) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.startswith("hf_w2s"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hf_w2s"))
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Each module's hf_w2s imports, wherever they are (module level, inside functions, under TYPE_CHECKING); a
    module's import of a package above it (its ``__init__`` re-exports its modules) does not count."""
    mods = modules()
    graph = {m: {i for i in imports_of(p, top_level_only=False) if i in mods and i != m} for m, p in mods.items()}
    return {m: {i for i in imports if not m.startswith(i + ".")} for m, imports in graph.items()}


#: the layers, from the top: a module imports modules of its own layer or of layers below it, never above
LAYERS = [
    ("commands", ("hf_w2s.cli", "hf_w2s.scripts")),
    ("the runner", ("hf_w2s.experiment",)),
    ("the trainer", ("hf_w2s.trainer",)),
    # data, models, LoRA, the Hub, metrics, calibration, distributed helpers, options classes: everything else
    ("the library", ()),
    ("plain helpers", ("hf_w2s.losses", "hf_w2s.options", "hf_w2s.files", "hf_w2s.labels", "hf_w2s.security",
                       "hf_w2s.yaml_config", "hf_w2s.import_utils", "hf_w2s.console")),
]


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return next(i for i, (_, prefixes) in enumerate(LAYERS) if not prefixes)


def test_layers_import_downwards_only():
    upward = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {i} ({LAYERS[layer_of(i)][0]})"
                    for m, imports in import_graph().items() if m != "hf_w2s" for i in imports
                    if i != "hf_w2s" and layer_of(i) < layer_of(m))
    assert not upward, upward


def test_no_import_cycle_between_modules():
    graph = import_graph()
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph[m]):
            visit(n)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, cycles


def test_every_module_is_reached_from_outside_the_tests():
    mods = modules()
    used = set()
    for p in [*PACKAGE.rglob("*.py"), *(ROOT / "recipes").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        used |= imports_of(p, top_level_only=False)
        used |= set(re.findall(r"hf_w2s(?:\.\w+)+", p.read_text()))
    used |= set(re.findall(r"hf_w2s(?:\.\w+)+", (ROOT / "pyproject.toml").read_text()))
    lazy = re.findall(r'"(\w+(?:\.\w+)*)",?\s*$', (PACKAGE / "__init__.py").read_text(), flags=re.M)
    used |= {f"hf_w2s.{m}" for m in lazy}
    orphans = sorted(m for m in mods if m != "hf_w2s" and m not in used and not m.endswith("__main__"))
    assert not orphans, f"modules nothing outside the tests imports: {orphans}"


def test_no_function_over_80_lines_without_a_reason():
    long = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES and "long:" not in lines[node.lineno - 1] + lines[node.lineno]:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
