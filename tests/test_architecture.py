"""The import rule `portal -> core <- admin`, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

from core.config import PROJECT_ROOT

COMPOSITION_ROOT = Path("core/factory.py")


def imported_top_level_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules_of(package: str) -> list[Path]:
    return sorted(path.relative_to(PROJECT_ROOT) for path in (PROJECT_ROOT / package).rglob("*.py"))


def test_portal_never_imports_admin():
    offenders = [str(p) for p in modules_of("portal") if "admin" in imported_top_level_packages(PROJECT_ROOT / p)]
    assert offenders == []


def test_admin_never_imports_portal():
    offenders = [str(p) for p in modules_of("admin") if "portal" in imported_top_level_packages(PROJECT_ROOT / p)]
    assert offenders == []


def test_core_imports_the_blueprints_only_in_the_application_factory():
    offenders = [
        str(path)
        for path in modules_of("core")
        if path != COMPOSITION_ROOT and imported_top_level_packages(PROJECT_ROOT / path) & {"portal", "admin"}
    ]
    assert offenders == []
    assert {"portal", "admin"} <= imported_top_level_packages(PROJECT_ROOT / COMPOSITION_ROOT)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """Guard against a checker that cannot fail: a nested import must be found."""
    module = tmp_path / "sample.py"
    module.write_text("def f():\n    from admin.guard import PUBLIC_ENDPOINTS\n    import portal.public\n")
    assert imported_top_level_packages(module) == {"admin", "portal"}


def test_only_wsgi_creates_an_app_at_import_time():
    creators = [
        str(path.relative_to(PROJECT_ROOT))
        for package in ("core", "portal", "admin")
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if any(
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "create_app"
            for node in ast.parse(path.read_text()).body
        )
    ]
    assert creators == []
    assert "app = create_app()" in (PROJECT_ROOT / "wsgi.py").read_text()


# ---------------------------------------------------------------------------------------------------------
# A module's underscore names are its own
# ---------------------------------------------------------------------------------------------------------

PROJECT_PACKAGES = ("core", "portal", "admin")
# The tests may reach into a module's internals; the application code and the scripts may not.
CHECKED_FOR_PRIVATE_IMPORTS = (*PROJECT_PACKAGES, "scripts", "stack_tests")


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names_imported(path: Path) -> list[str]:
    """`module:name` for every underscore name `path` takes from another project module: `from core.x import
    _name`, or `_name` read from a project module it imported (`from core import x` then `x._name`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    module_aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in PROJECT_PACKAGES:
                continue
            for alias in node.names:
                if is_private(alias.name):
                    found.append(f"{node.module}:{alias.name}")
                module_aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT_PACKAGES:
                    module_aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
        ):
            found.append(f"{module_aliases[node.value.id]}:{node.attr}")
    return found


def test_no_module_imports_another_modules_underscore_names():
    """An underscore name is private to its module: a helper another module needs is made public (named and
    documented), as core.services.requests.lifecycle does for the request state machine."""
    offenders = {
        str(path): names
        for package in CHECKED_FOR_PRIVATE_IMPORTS
        for path in modules_of(package)
        if (names := private_names_imported(PROJECT_ROOT / path))
    }
    assert offenders == {}


def test_the_private_name_checker_sees_both_ways_of_reaching_in(tmp_path):
    """Guard against a checker that cannot fail."""
    module = tmp_path / "sample.py"
    module.write_text(
        "from core.services.requests import _move, move\n"
        "from core.services import releases\n"
        "import core.legal_clock as clock\n"
        "from pathlib import _ignored\n"
        "def f(request):\n"
        "    releases._serializer()\n"
        "    clock._bank_holidays()\n"
        "    request._private\n"
        "    releases.__name__\n"
    )
    assert private_names_imported(module) == [
        "core.services.requests:_move",
        "core.services.releases:_serializer",
        "core.legal_clock:_bank_holidays",
    ]


# ---------------------------------------------------------------------------------------------------------
# The services import each other in one direction
# ---------------------------------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names & known


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another, directly or through others (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_services_do_not_import_each_other_in_a_circle():
    """A service module may use another only if that one does not use it back, even from inside a function:
    core.services.requests (and its modules) come before recordings and releases, which come before accounts.
    A package's `__init__` importing its own modules is not a circle."""
    paths = modules_of("core/services")
    known = {module_name(path) for path in paths}
    graph = {module_name(path): imported_modules(PROJECT_ROOT / path, known) for path in paths}
    for package in [name for name in graph if (PROJECT_ROOT / name.replace(".", "/") / "__init__.py").exists()]:
        graph[package] = {target for target in graph[package] if not target.startswith(package + ".")}
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    """Guard against a checker that cannot fail."""
    module = tmp_path / "sample.py"
    module.write_text("from core.services.b import x\ndef f():\n    from core.services import c\n")
    known = {"core.services.b", "core.services.c"}
    assert imported_modules(module, known) == known
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
