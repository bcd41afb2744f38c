"""The result model: states, check results, the verdict, and the exit code they imply.

Modelled on nagiosplugin: every state is a value that knows its exit code, and the overall
state is computed here (not in the CLI), the way black's ``Report`` owns its return code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional


class Status(enum.Enum):
    """A check state. ``rank`` orders severity: CRITICAL > UNKNOWN > WARNING > OK > SKIP.

    The contract puts CRITICAL above UNKNOWN so that a definite CRITICAL is never hidden by an
    unrelated UNKNOWN; SKIP (a check that does not apply or was not asked for) counts as OK.
    """

    OK = ("OK", 0, 1)
    WARNING = ("WARNING", 1, 2)
    CRITICAL = ("CRITICAL", 2, 4)
    UNKNOWN = ("UNKNOWN", 3, 3)
    SKIP = ("SKIP", 0, 0)

    def __init__(self, label: str, exit_code: int, rank: int) -> None:
        self.label = label
        self.exit_code = exit_code
        self.rank = rank

    def __str__(self) -> str:
        return self.label

    @classmethod
    def worst(cls, states: list[Status]) -> Status:
        """The overall state: the highest-ranked of ``states``; OK when there are none."""
        overall = Status.OK
        for s in states:
            if s.rank > overall.rank:
                overall = s
        return overall


@dataclass(frozen=True)
class Result:
    """What one check concluded.

    ``code`` is a stable machine-readable reason (e.g. ``device-missing``), ``evidence`` names
    the sources the judgement rests on (paths, probes, processes), ``hint`` says what to do
    when the state is not OK.
    """

    id: str
    status: Status
    summary: str
    hint: Optional[str] = None
    code: str = ""
    evidence: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    def with_id(self, check_id: str, title: str) -> Result:
        return Result(
            id=check_id,
            status=self.status,
            summary=self.summary,
            hint=self.hint,
            code=self.code,
            evidence=self.evidence,
            details=self.details,
            title=title,
        )


@dataclass(frozen=True)
class Instance:
    """One QEMU process and the accelerator it was proven (or not) to use."""

    pid: int
    name: Optional[str]
    uuid: Optional[str]
    accel: str  # kvm | tcg | unknown
    evidence: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)


class HostFacts(NamedTuple):
    hostname: str
    arch: str
    kernel: str
    os: str
    virtual: Optional[bool]


class Verdict(NamedTuple):
    """The whole run: host facts, the headline verdict, every check result and the instances."""

    host: HostFacts
    kvm_usable: Optional[bool]
    kvm_usable_reason: str
    acceleration: str  # kvm | tcg | mixed | none | unknown
    virt_type: Optional[str]
    summary: str
    results: tuple[Result, ...]
    instances: tuple[Instance, ...] = ()
    snapshot: Optional[str] = None

    @property
    def status(self) -> Status:
        return Status.worst([r.status for r in self.results])

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def counts(self) -> dict[str, int]:
        kvm = sum(1 for i in self.instances if i.accel == "kvm")
        tcg = sum(1 for i in self.instances if i.accel == "tcg")
        return {
            "instances": len(self.instances),
            "kvm_instances": kvm,
            "tcg_instances": tcg,
            "unknown_instances": len(self.instances) - kvm - tcg,
        }
