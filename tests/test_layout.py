"""The repository layout and deployment files the project promises."""

from pathlib import Path

import yaml

from fraudstream.stream.kafka_local import KAFKA_VERSION

ROOT = Path(__file__).resolve().parent.parent


def test_top_level_layout():
    for name in ("pyproject.toml", "stream", "models", "tests", "deploy", "docker-compose.yml",
                 "Makefile", ".ci/run", "README.md", "docs/contract.md", "deploy/kafka/pom.xml"):
        assert (ROOT / name).exists(), name


def test_compose_runs_the_same_kafka_version_in_kraft_mode():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka


def test_pom_pins_the_same_kafka_version():
    pom = (ROOT / "deploy/kafka/pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


MAX_MODULE_LINES = 450  # issue 14: units a newcomer can read in one sitting


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, base in (("fraudstream.stream", ROOT / "stream"), ("fraudstream.models", ROOT / "models")):
        for path in base.rglob("*.py"):
            parts = [p for p in path.relative_to(base).with_suffix("").parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = path
    return mods


def test_no_module_is_longer_than_a_sitting():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long


def _runtime_imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports when it runs (``if TYPE_CHECKING:`` left out)."""
    import ast

    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - max(0, node.level - 1)]
            target = ".".join(base + [node.module]) if node.level and node.module else (
                ".".join(base) if node.level else node.module or "")
            deps |= {c for c in [target, *(f"{target}.{a.name}" for a in node.names)]
                     if c in mods and c != name}
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name in mods}
    return deps


def test_no_import_cycle():
    mods = _modules()
    graph = {name: _runtime_imports(name, path, mods) for name, path in mods.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    cycles = sorted(m for m in graph if reaches(m, m))
    assert not cycles


def test_the_cycle_check_sees_a_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from .b import x\n")
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\nfrom .a import z\n")
    mods = {"p.a": a, "p.b": b}
    assert _runtime_imports("p.a", a, mods) == {"p.b"}
    assert _runtime_imports("p.b", b, mods) == {"p.a"}  # the runtime one, not the typing one
