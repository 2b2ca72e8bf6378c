"""The build conveyor: recipes (``recipe``), the bubblewrap sandbox (``sandbox``), the recorded Debian
environment (``environment``), outputs (``outputs``),
normalisation and comparison (``normalize``, ``compare``), run and compare (``run``, no keys), sign and publish
(``publish``), and the two put together for ``overt build`` (``conveyor``).

``normalize.normalize`` stays in its module: the ``normalize`` submodule would shadow it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.build.compare import DiffoscopeReport, Verdict, compare_outputs
    from overt.build.conveyor import build
    from overt.build.environment import Environment, EnvironmentDifference, compare_environments
    from overt.build.outputs import Output, collect_outputs
    from overt.build.publish import KeptFailure, Publication, sign_and_publish
    from overt.build.recipe import Recipe, ToolchainInput, parse_recipe, validate_recipe
    from overt.build.run import RunResult, Variation, run_and_compare
    from overt.build.sandbox import StepsResult, check_sandbox, run_steps

__all__ = [
    "DiffoscopeReport",
    "Environment",
    "EnvironmentDifference",
    "KeptFailure",
    "Output",
    "Publication",
    "Recipe",
    "RunResult",
    "StepsResult",
    "ToolchainInput",
    "Variation",
    "Verdict",
    "build",
    "check_sandbox",
    "collect_outputs",
    "compare_environments",
    "compare_outputs",
    "parse_recipe",
    "run_and_compare",
    "run_steps",
    "sign_and_publish",
    "validate_recipe",
]

_EXPORTS = {
    "compare": ("DiffoscopeReport", "Verdict", "compare_outputs"),
    "conveyor": ("build",),
    "environment": ("Environment", "EnvironmentDifference", "compare_environments"),
    "outputs": ("Output", "collect_outputs"),
    "publish": ("KeptFailure", "Publication", "sign_and_publish"),
    "recipe": ("Recipe", "ToolchainInput", "parse_recipe", "validate_recipe"),
    "run": ("RunResult", "Variation", "run_and_compare"),
    "sandbox": ("StepsResult", "check_sandbox", "run_steps"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
