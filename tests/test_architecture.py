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
