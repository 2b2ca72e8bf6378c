"""The public surface: what each package declares in ``__all__``, that it resolves, and that declaring it is cheap.

Modelled on httpx's ``tests/test_exports.py``: every name in every ``__all__`` resolves, and ``__all__`` is
sorted and has no duplicates. The package ``__init__`` files are lazy (:func:`overt.lazy_exports`), so this
also checks that their three lists agree and that importing a package loads none of the heavy libraries
(``overt scan`` workers import ``overt.avdb.scan``, which runs ``overt/avdb/__init__.py`` first). The error
hierarchy drawn in :mod:`overt.errors`'s docstring is checked against the classes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import overt
import overt.errors
from overt.errors import Error

SRC = Path(overt.__file__).parent
PACKAGES = [
    "overt.attest",
    "overt.auditor",
    "overt.avdb",
    "overt.build",
    "overt.distribute",
    "overt.home",
    "overt.keys",
    "overt.residency",
    "overt.server",
    "overt.source",
    "overt.tlog",
]
PUBLIC = ["overt", "overt.errors", *PACKAGES]
# Not library surfaces: the command line (nothing imports it) and the demo (its stages are run by
# `overt demo` and tests/cli/test_demo.py, not reused).
EDGES = {"cli", "demo"}
HEAVY = ("fastapi", "uvicorn", "yara_x")
# Top-level names that two modules define for two different things. Rename one rather than add to this.
KNOWN_COLLISIONS = {
    "LogState": {"overt.tlog.stores", "overt.tlog.witness"},
    "create_app": {"overt.server.log", "overt.server.witness"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> list[Path]:
    return sorted(
        p
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] not in EDGES and "__pycache__" not in p.parts
    )


def _isort_order(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then CamelCase, then the rest, each alphabetically."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_sorted_without_duplicates(name: str) -> None:
    exported = importlib.import_module(name).__all__
    assert exported, f"{name}.__all__ is empty"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    assert exported == sorted(exported, key=_isort_order), f"{name}.__all__ is not sorted"


@pytest.mark.parametrize("name", PUBLIC)
def test_every_exported_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr} does not resolve"
        assert attr in dir(module), f"{name}.{attr} is missing from dir({name})"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def _type_checking_imports(package: str) -> set[tuple[str, str]]:
    """(module, name) of each ``from M import N`` inside the package ``__init__``'s ``if TYPE_CHECKING:``."""
    tree = ast.parse((SRC.parent / package.replace(".", "/") / "__init__.py").read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    ]
    return {
        (imp.module or "", alias.name)
        for block in blocks
        for imp in block.body
        if isinstance(imp, ast.ImportFrom)
        for alias in imp.names
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_type_checkers_and_the_lazy_map_see_the_same_names(package: str) -> None:
    module = importlib.import_module(package)
    lazy = {(f"{package}.{sub}", name) for sub, names in module._EXPORTS.items() for name in names}
    assert _type_checking_imports(package) == lazy
    assert {name for _, name in lazy} == set(module.__all__)
    for sub, name in lazy:
        assert getattr(module, name) is getattr(importlib.import_module(sub), name), f"{package}.{name}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_exported_name_is_shadowed_by_a_submodule(package: str) -> None:
    """``import overt.avdb.audit`` sets the attribute ``audit`` of ``overt.avdb`` to the module, so a function
    exported under a submodule's name would change meaning with import order."""
    module = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert not set(module.__all__) & submodules


def test_every_package_declares_its_surface() -> None:
    packages = {_module_name(p.parent / "__init__.py") for p in _sources() if p.parent != SRC}
    assert packages == set(PACKAGES), "add the package to PACKAGES, with an __init__.py that declares __all__"
    for package in packages:
        assert (SRC.parent / package.replace(".", "/") / "__init__.py").is_file(), package


def test_one_name_means_one_thing() -> None:
    """No two modules define a public class or function of the same name (``AuditReport`` was two reports)."""
    defined: dict[str, set[str]] = {}
    for path in _sources():
        for node in ast.parse(path.read_text()).body:
            is_def = isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            if is_def and not node.name.startswith("_"):
                defined.setdefault(node.name, set()).add(_module_name(path))
    collisions = {name: modules for name, modules in defined.items() if len(modules) > 1}
    for name, modules in collisions.items():
        assert KNOWN_COLLISIONS.get(name) == modules, f"{name} is defined in {sorted(modules)}: rename one"


@pytest.mark.parametrize("package", PACKAGES)
def test_declaring_the_surface_loads_no_heavy_library(package: str) -> None:
    code = (
        f"import sys, {package} as m\n"
        "assert m.__all__ and set(m.__all__) <= set(dir(m))\n"
        f"print(' '.join(h for h in {HEAVY!r} if h in sys.modules))\n"
    )
    if package == "overt.avdb":  # what each ``overt scan`` worker imports: yara_x, never the HTTP edge
        code += (
            "import overt.avdb.scan\nprint(' '.join(h for h in ('fastapi', 'uvicorn') if h in sys.modules))\n"
        )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [], f"importing {package} loads {r.stdout.split()}"


def _error_classes() -> dict[str, type[Error]]:
    """Every Error subclass defined under src/overt: found in the source, then imported."""
    known = {"Error"}
    where: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for path in sorted(SRC.rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                bases = {b.id for b in getattr(node, "bases", ()) if isinstance(b, ast.Name)}
                if isinstance(node, ast.ClassDef) and bases & known and node.name not in where:
                    where[node.name] = _module_name(path)
                    known.add(node.name)
                    grew = True
    found = {name: getattr(importlib.import_module(module), name) for name, module in where.items()}
    found["Error"] = Error
    return found


def _drawn_tree() -> dict[str, tuple[str | None, str]]:
    """The docstring's tree: each class name -> (parent name, module named in parentheses or overt.errors)."""
    doc = overt.errors.__doc__ or ""
    lines = doc.split("::\n", 1)[1].strip("\n").splitlines()
    drawn: dict[str, tuple[str | None, str]] = {}
    stack: list[str] = []
    for line in lines:
        m = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?(\w+)", line)
        assert m, f"cannot read tree line {line!r}"
        depth = len(m.group(1)) // 4 + (1 if "── " in line else 0)
        name = m.group(2)
        stack[depth:] = [name]
        module = re.search(r"\((\w+\.\w+)\)\s*$", line)
        drawn[name] = (
            stack[depth - 1] if depth else None,
            f"overt.{module.group(1)}" if module else "overt.errors",
        )
    return drawn


def test_the_error_tree_in_the_docstring_is_the_hierarchy() -> None:
    drawn = _drawn_tree()
    classes = _error_classes()
    assert drawn.keys() == classes.keys()
    for name, cls in classes.items():
        parents = [b.__name__ for b in cls.__bases__ if issubclass(b, Error)]
        assert (parents[0] if parents else None, cls.__module__) == drawn[name], name


def test_every_error_family_is_exported() -> None:
    families = {n for n, c in inspect.getmembers(overt.errors, inspect.isclass) if issubclass(c, Error)}
    assert families == set(overt.errors.__all__)


def test_usage_errors_exit_2() -> None:
    """README, exit codes: 2 is a usage or operational error."""
    assert overt.errors.UsageError.exit_code == 2
    assert issubclass(overt.errors.UsageError, Error)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_nothing_outside_the_command_line_imports_it() -> None:
    """The CLI is an edge with no logic of its own: no library module, test or benchmark imports it. The two
    entry points that run it (the console script in pyproject.toml and ``python -m overt``) are the only ways in;
    tests run it as a process."""
    root = SRC.parent.parent
    files = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "cli"]
    files += [*(root / "tests").rglob("*.py"), *(root / "benchmarks").rglob("*.py")]
    entry = SRC / "__main__.py"
    offenders = {
        str(p.relative_to(root)): sorted(
            m for m in _imports(p) if m == "overt.cli" or m.startswith("overt.cli.")
        )
        for p in files
        if p != entry
    }
    assert not {p: m for p, m in offenders.items() if m}
    assert _imports(entry) == {"__future__", "overt.cli"}
