"""Every module that defines an `@job` is listed in JOB_MODULES, so the worker registers it.

A job is registered when its module is imported; `create_app` imports exactly JOB_MODULES.
A module left off the list still works inline in tests that import it, and is then never
run by the worker ("no job registered as ..."). This reads the source instead of importing,
so a forgotten module is found even when nothing else imports it.
"""
import ast
import importlib
from pathlib import Path

import app as app_package
from app import JOB_MODULES
from app.jobs import REGISTRY

APP_DIR = Path(app_package.__file__).parent


def _job_kind(decorator: ast.expr) -> str | None:
    """The kind of a `@job(...)` / `@jobs.job(...)` decorator ("?" when it is a name), else None."""
    if not isinstance(decorator, ast.Call) or not decorator.args:
        return None
    name = decorator.func
    called = name.id if isinstance(name, ast.Name) else name.attr if isinstance(name, ast.Attribute) else None
    if called != "job":
        return None
    kind = decorator.args[0]
    return kind.value if isinstance(kind, ast.Constant) and isinstance(kind.value, str) else "?"


def jobs_in_source() -> dict[str, set[str]]:
    """Module path -> the job kinds its functions are decorated with, for every module of app/.

    A kind given by a constant's name (`@job(JOB_KIND)`) is "?"."""
    found: dict[str, set[str]] = {}
    for path in sorted(APP_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        kinds = {kind for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for kind in map(_job_kind, node.decorator_list) if kind}
        if kinds:
            parts = path.relative_to(APP_DIR.parent).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[module] = kinds
    return found


def test_every_module_with_a_job_is_in_job_modules():
    found = jobs_in_source()
    assert found, "the scan found no @job at all: it is not reading app/"
    forgotten = sorted(set(found) - set(JOB_MODULES))
    assert forgotten == [], f"add these to JOB_MODULES in app/__init__.py: {forgotten}"


def test_job_modules_lists_only_modules_that_define_jobs():
    found = jobs_in_source()
    stale = [module for module in JOB_MODULES if module not in found]
    assert stale == [], f"JOB_MODULES names modules without an @job (moved or renamed?): {stale}"
    assert len(JOB_MODULES) == len(set(JOB_MODULES))


def test_importing_job_modules_registers_every_job_kind_in_the_source():
    for module in JOB_MODULES:
        importlib.import_module(module)
    kinds = set().union(*jobs_in_source().values()) - {"?"}
    assert len(kinds) > 5 and kinds <= set(REGISTRY), sorted(kinds - set(REGISTRY))
