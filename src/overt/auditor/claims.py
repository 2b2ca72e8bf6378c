"""What a logged provenance claims, checked before (and besides) the rebuild that answers it.

A rebuild proves something only about the build it ran. The provenance is the vendor's signed claim of what
was built and how; a PASSED verdict must mean that claim is the build this rebuilder ran and that its outputs
came out bit for bit. So the claim is checked first, and a claim that cannot be true, or names a build other
than the one the escrowed source makes, is refused with a :func:`refusal` (a BAD verdict, final at once:
rebuilding again cannot change what the vendor signed):

1. the subjects (:func:`check_subjects`): each names a sha256 and a relative path inside the build directory,
   and no name twice (two subjects with one name would let one of them go uncompared);
2. a conveyor build (:func:`check_product_definition`), against the recipe of the escrowed source, parsed as
   :func:`overt.build.run.load_recipe` parses it: ``externalParameters`` holds exactly ``source`` and
   ``recipe``; ``recipe`` is that recipe's :meth:`~overt.build.recipe.Recipe.to_dict`; ``source`` has the
   digest of the resolved source dependency; the other resolved dependencies are exactly the recipe's
   toolchain inputs (by sha256, each once) and at most one ``environment:debian``; the reference run recorded
   in ``internalParameters.variations`` is the one this recipe makes
   (:func:`overt.build.run.reference_variation`);
3. an AV database (:func:`check_database_definition`): ``externalParameters`` holds exactly ``source``,
   ``database`` and ``version``, and the source is the one resolved dependency, with the same digest.

The build type itself is checked when the entry is read (:func:`overt.auditor.reproduce.read_provenance`).

Deliberately not checked, because nothing the rebuild establishes bears on them: the rest of
``internalParameters`` (jurisdiction, sandbox, whether the vendor ran a check, its second run's variation, its
reproducibility verdict: the vendor's account of its own run), ``runDetails`` (builder id, invocation times)
and the byproducts (the build log's digest: a log records timings and is not an output). A VSA's PASSED is
about the subjects only, and its policy says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from overt.attest.provenance import Provenance
from overt.attest.statement import ResourceDescriptor
from overt.build.environment import ENVIRONMENT_NAME
from overt.build.recipe import Recipe
from overt.build.run import reference_variation
from overt.errors import Error, FormatError, VerificationError
from overt.source.snapshot import check_member_path

PRODUCT_PARAMETERS = frozenset({"source", "recipe"})
DATABASE_PARAMETERS = frozenset({"source", "database", "version"})


def refusal(message: str, **evidence: Any) -> VerificationError:
    """The error refusing a vendor-signed provenance's claim: it claims what cannot be true, or a build other
    than the one rebuilt (:func:`is_refusal` tells it from other verification errors)."""
    return VerificationError(message, refused_claim=True, **evidence)


def is_refusal(e: Error) -> bool:
    """``e`` refuses the provenance's claim (:func:`refusal`), rather than bytes the site served."""
    return e.evidence.get("refused_claim") is True


def check_subjects(subjects: Sequence[ResourceDescriptor]) -> None:
    """Step 1 of the module doc: every subject names a sha256 and a safe path, and no name is given twice."""
    for s in subjects:
        if "sha256" not in s.digest:
            raise refusal(f"the provenance's subject {s.name[:200]!r} names no sha256 digest")
        try:
            check_member_path(s.name)
        except FormatError as e:
            raise refusal(
                f"the provenance's subject {s.name[:200]!r} is not a relative path inside the build "
                "directory: a provenance naming it is refused"
            ) from e
    twice = sorted(n for n, k in Counter(s.name for s in subjects).items() if k > 1)
    if twice:
        name = twice[0]
        digests = ", ".join(s.digest["sha256"] for s in subjects if s.name == name)
        raise refusal(
            f"the provenance names subject {name} more than once (sha256 {digests}): only one of them can be "
            "what the build made, so the claim is refused",
            duplicate=name,
        )


def source_digest(external: Mapping[str, Any]) -> Mapping[str, Any]:
    """``externalParameters.source.digest`` (refused if it is not an object)."""
    source = external.get("source")
    digest = source.get("digest") if isinstance(source, dict) else None
    if not isinstance(digest, dict):
        raise refusal("the provenance's externalParameters name no source digest")
    return digest


def _source_dependency(provenance: Provenance) -> ResourceDescriptor:
    """The resolved dependency that is the provenance's source, its digest the same as ``source``'s."""
    definition = provenance.build_definition
    digest = source_digest(definition.external_parameters)
    same = [d for d in definition.resolved_dependencies if d.digest.get("sha256") == digest.get("sha256")]
    if len(same) != 1:
        raise refusal(
            f"the provenance resolves its source (sha256 {str(digest.get('sha256'))[:64]}) "
            f"{len(same)} times, not once"
        )
    if dict(same[0].digest) != dict(digest):
        raise refusal(
            "the provenance's externalParameters.source digest is not its resolved source dependency's: "
            f"{dict(digest)} vs {dict(same[0].digest)}"
        )
    return same[0]


def _parameters(provenance: Provenance, expected: frozenset[str]) -> None:
    names = set(provenance.build_definition.external_parameters)
    if names != expected:
        extra, missing = sorted(names - expected), sorted(expected - names)
        parts = [f"{', '.join(n[:80] for n in extra)} not run by the rebuilder"] if extra else []
        parts += [f"{', '.join(missing)} missing"] if missing else []
        raise refusal(f"the provenance's externalParameters are not a build's: {'; '.join(parts)}")


def _differing(claimed: object, actual: Mapping[str, Any]) -> list[str]:
    if not isinstance(claimed, dict):
        return ["all"]
    return [k for k in sorted(set(claimed) | set(actual)) if claimed.get(k) != actual.get(k)]


def check_product_definition(provenance: Provenance, recipe: Recipe) -> None:
    """Step 2 of the module doc: the provenance's build definition is the one ``recipe`` (the escrowed
    source's) makes."""
    definition = provenance.build_definition
    _parameters(provenance, PRODUCT_PARAMETERS)
    differ = _differing(definition.external_parameters.get("recipe"), recipe.to_dict())
    if differ:
        raise refusal(
            f"the provenance's recipe is not the escrowed source's: {', '.join(d[:80] for d in differ)} differ",
            differing=differ,
        )
    source = _source_dependency(provenance)
    _check_dependencies(definition.resolved_dependencies, source=source, recipe=recipe)
    variations = definition.internal_parameters.get("variations")
    runs = variations.get("runs") if isinstance(variations, dict) else None
    claimed = runs[0] if isinstance(runs, list) and runs else None
    differ = _differing(claimed, reference_variation(recipe).to_dict())
    if differ:
        raise refusal(
            "the provenance's reference run is not the one the escrowed recipe makes: "
            f"{', '.join(d[:80] for d in differ)} differ"
        )


def _check_dependencies(
    deps: Sequence[ResourceDescriptor], *, source: ResourceDescriptor, recipe: Recipe
) -> None:
    """The resolved dependencies besides the source: the recipe's toolchain inputs, each once, and at most
    one recorded environment; nothing else."""
    wanted = {t.sha256: t.name for t in recipe.toolchain}
    others = [d for d in deps if d is not source]
    environments = [d for d in others if d.name == ENVIRONMENT_NAME]
    tools = Counter(str(d.digest.get("sha256", "")) for d in others if d.name != ENVIRONMENT_NAME)
    parts = [f"{len(environments)} recorded environments"] if len(environments) > 1 else []
    parts += [
        f"{sha[:64]} resolved but not in the recipe's toolchain" for sha in sorted(tools) if sha not in wanted
    ]
    parts += [
        f"{name} ({sha}) in the recipe's toolchain, not resolved"
        for sha, name in wanted.items()
        if sha not in tools
    ]
    parts += [
        f"{wanted[sha]} resolved {n} times" for sha, n in sorted(tools.items()) if n > 1 and sha in wanted
    ]
    if parts:
        raise refusal(
            "the provenance's resolved dependencies are not the escrowed recipe's toolchain: "
            + "; ".join(parts)
        )


def check_database_definition(provenance: Provenance) -> None:
    """Step 3 of the module doc."""
    _parameters(provenance, DATABASE_PARAMETERS)
    source = _source_dependency(provenance)
    others = [d for d in provenance.build_definition.resolved_dependencies if d is not source]
    if others:
        names = ", ".join((d.name or d.uri)[:80] for d in others)
        raise refusal(f"the database provenance resolves more than its rules source: {names}")
