"""The README's layout section names what the tree holds, and the package has no import cycle."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"## Layout\n\n```\n(.*?)```", text, re.S).group(1)


def test_the_readme_layout_names_every_module_script_and_benchmark():
    layout = _layout()
    names = [p.name for p in (ROOT / "gan_zoo").glob("*.py") if p.name != "__init__.py"]
    names += [p.name for p in (ROOT / "scripts").iterdir() if p.suffix in (".py", ".sh")]
    names += [p.name for p in (ROOT / "benchmarks").rglob("*") if p.suffix in (".py", ".sh") and p.name != "__init__.py"]
    missing = [n for n in names if not re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", layout)]
    assert not missing, f"README layout does not name: {missing}"
    for folder in re.findall(r"^(\w+)/", layout, re.M):
        assert (ROOT / folder).is_dir(), folder


def _first_party_imports(path: Path, module: str) -> set[str]:
    """Modules of gan_zoo that ``path`` imports anywhere (top level or inside functions)."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("gan_zoo"):
                out.add(name)
                out.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("gan_zoo"))
    return out


def test_no_import_cycle_among_the_package_modules():
    files = {}
    for root, prefix in ((ROOT / "gan_zoo", "gan_zoo"), (ROOT / "datamodules", "gan_zoo.datamodules")):
        for p in root.rglob("*.py"):
            parts = list(p.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join([prefix, *parts])] = p
    graph = {}
    for mod, p in files.items():
        targets = {t for t in _first_party_imports(p, mod) if t in files and t != mod}
        # "from gan_zoo import weights" imports the submodule, not the package's __init__
        graph[mod] = {t for t in targets if not (mod.startswith(t + ".") or any(u.startswith(t + ".") for u in targets))}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
