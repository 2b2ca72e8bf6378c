"""``overt residency ...``: the jurisdiction registry, tenants and tokens, stores, approved staff access, the
access-transparency log and migration. Each concept's commands live in their own ``residency_*`` module; this
one only mounts them."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Customer data residency: registry, tenants, stores, approved access, access log, migration.",
    no_args_is_help=True,
)


def _mount() -> None:
    """Add every residency command module that exists (they land one by one)."""
    import importlib

    for name in ("residency_registry", "residency_store", "residency_access", "residency_ops"):
        try:
            module = importlib.import_module(f"overt.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"overt.cli.{name}":
                raise
            continue
        sub: typer.Typer = module.app
        app.registered_commands.extend(sub.registered_commands)
        app.registered_groups.extend(sub.registered_groups)


_mount()
