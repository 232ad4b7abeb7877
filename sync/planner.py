"""From table mappings to the jobs of a run, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .errors import ConfigurationError
from .mappings import Catalog
from .model import Direction, TableMapping


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    mapping: str
    direction: Direction
    depends_on: tuple[str, ...]


def job_id(mapping: str, direction: Direction) -> str:
    return f"{mapping}:{direction.value}"


def dependency_order(mappings: Iterable[TableMapping]) -> list[TableMapping]:
    """Topological order (dependencies first), stable in catalogue order; cycles are refused."""
    by_name = {m.name: m for m in mappings}
    ordered: list[TableMapping] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ConfigurationError("Table mapping dependencies form a cycle: " + " -> ".join(trail + (name,)))
        state[name] = "visiting"
        for dep in by_name[name].dependencies:
            if dep in by_name:
                visit(dep, trail + (name,))
        state[name] = "done"
        ordered.append(by_name[name])

    for name in by_name:
        visit(name, ())
    return ordered


def plan(catalog: Catalog, only: Iterable[str] | None = None) -> list[PlannedJob]:
    """One job per enabled mapping and direction.

    A job waits for every job of the mappings it depends on; the Sales -> BC job of a
    bidirectional mapping waits for its BC -> Sales job, as BC runs those passes in that order.
    Dependencies on mappings left out of the run (disabled or not asked for) are dropped.
    """
    wanted = set(only) if only is not None else None
    if wanted is not None:
        unknown = wanted - set(catalog.names())
        if unknown:
            raise ConfigurationError(f"Unknown table mapping(s): {', '.join(sorted(unknown))}.")
    chosen = [m for m in catalog if m.enabled and (wanted is None or m.name in wanted)]
    jobs_of: dict[str, list[str]] = {}
    planned: list[PlannedJob] = []
    for mapping in dependency_order(chosen):
        upstream = tuple(j for dep in mapping.dependencies for j in jobs_of.get(dep, ()))
        ids: list[str] = []
        for direction in mapping.direction.job_directions():
            this = job_id(mapping.name, direction)
            planned.append(PlannedJob(this, mapping.name, direction, upstream + tuple(ids)))
            ids.append(this)
        jobs_of[mapping.name] = ids
    return planned
