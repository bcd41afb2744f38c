"""The result model: states, check results, the verdict, and the exit code they imply.

Modelled on nagiosplugin: every state is a value that knows its exit code, and the overall
state is computed here (not in the CLI), the way black's ``Report`` owns its return code.
"""

import enum
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
    def worst(cls, states: "list[Status]") -> "Status":
        """The overall state: the highest-ranked of ``states``; OK when there are none."""
        overall = Status.OK
        for s in states:
            if s.rank > overall.rank:
                overall = s
        return overall


# short names the checks use
OK, WARNING, CRITICAL, UNKNOWN, SKIP = (
    Status.OK,
    Status.WARNING,
    Status.CRITICAL,
    Status.UNKNOWN,
    Status.SKIP,
)
DEFAULT_TIMEOUT = 10.0  # seconds; the whole run ends within it (-t/--timeout)


class _Record:
    """A small immutable record with keyword defaults (what ``@dataclass(frozen=True)`` gives,
    without importing ``dataclasses``, which pulls in ``inspect``: ~5 ms a run)."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Record) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # holds a dict, as the dataclass did

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Result(_Record):
    """What one check concluded.

    ``code`` is a stable machine-readable reason (e.g. ``device-missing``), ``evidence`` names
    the sources the judgement rests on (paths, probes, processes), ``hint`` says what to do
    when the state is not OK.
    """

    __slots__ = ("code", "details", "evidence", "hint", "id", "status", "summary", "title")
    id: str
    status: Status
    summary: str
    hint: Optional[str]
    code: str
    evidence: tuple[str, ...]
    details: dict[str, Any]
    title: str

    def __init__(
        self,
        id: str,
        status: Status,
        summary: str,
        hint: Optional[str] = None,
        code: str = "",
        evidence: tuple[str, ...] = (),
        details: Optional[dict[str, Any]] = None,
        title: str = "",
    ) -> None:
        put = object.__setattr__
        put(self, "id", id)
        put(self, "status", status)
        put(self, "summary", summary)
        put(self, "hint", hint)
        put(self, "code", code)
        put(self, "evidence", evidence)
        put(self, "details", {} if details is None else details)
        put(self, "title", title)

    def with_id(self, check_id: str, title: str) -> "Result":
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


class Instance(_Record):
    """One QEMU process and the accelerator it was proven (or not) to use."""

    __slots__ = ("accel", "details", "evidence", "name", "pid", "uuid")
    pid: int
    name: Optional[str]
    uuid: Optional[str]
    accel: str  # kvm | tcg | unknown
    evidence: tuple[str, ...]
    details: dict[str, Any]

    def __init__(
        self,
        pid: int,
        name: Optional[str],
        uuid: Optional[str],
        accel: str,
        evidence: tuple[str, ...],
        details: Optional[dict[str, Any]] = None,
    ) -> None:
        put = object.__setattr__
        put(self, "pid", pid)
        put(self, "name", name)
        put(self, "uuid", uuid)
        put(self, "accel", accel)
        put(self, "evidence", evidence)
        put(self, "details", {} if details is None else details)


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
    error: Optional[str] = None  # why no verdict could be reached; the status is then UNKNOWN
    # why the instance list may be incomplete (hidden processes, a walk that did not finish
    # in time): the counts are then not known, and reports say so instead of counting
    instances_unknown: Optional[str] = None
    # when the evidence was read (seconds since the epoch): the run's start on the live host,
    # a snapshot's taken_at; None for a run that read nothing (Verdict.failed)
    generated_at: Optional[float] = None
    # how this host runs its guests (hvcheck.deployment: kind, name, evidence, knobs); None
    # when it was not recognised within the deadline or no verdict was reached
    deployment: Optional[dict[str, Any]] = None

    @classmethod
    def failed(cls, message: str) -> "Verdict":
        """The verdict of a run that could not reach one: a usage error, a snapshot that cannot
        be read, an interrupt or an internal failure.

        Status UNKNOWN (exit 3) with no check results; ``kvm_usable`` is None with ``message``
        as the reason, ``acceleration`` "unknown", the host facts empty. ``message`` becomes
        one line (newlines to spaces) and is kept in ``error``.
        """
        msg = " ".join(message.splitlines())
        return cls(
            host=HostFacts(hostname="", arch="", kernel="", os="", virtual=None),
            kvm_usable=None,
            kvm_usable_reason=msg,
            acceleration="unknown",
            virt_type=None,
            summary=msg,
            results=(),
            error=msg,
        )

    @property
    def status(self) -> Status:
        if self.error is not None:
            return Status.UNKNOWN
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


class GuestVerdict(NamedTuple):
    """``hvcheck guest``: how the machine hvcheck runs in is itself run.

    ``accel``: kvm | tcg | other (another hypervisor's hardware-assisted virtualization) |
    none (bare metal) | unknown; ``hypervisor``: kvm | qemu (QEMU without KVM) | xen | hyperv |
    vmware | ... | None; ``nested``: whether this guest is offered virtualization of its own
    (None: cannot tell); ``evidence``: the kinds of evidence the verdict rests on
    (kernel-log, clocksource, cpu-model, cpu-flag, dmi, sys-hypervisor, sysinfo,
    device-tree); ``generated_at``: when the evidence was read, in seconds since the epoch
    (now on the live host, the snapshot's ``taken_at``), as ``Verdict.generated_at``.
    """

    host: HostFacts
    accel: str
    hypervisor: Optional[str]
    nested: Optional[bool]
    evidence: tuple[str, ...]
    summary: str
    results: tuple[Result, ...]
    platform: Optional[str] = None
    generated_at: Optional[float] = None
    snapshot: Optional[str] = None
    error: Optional[str] = None  # why no verdict could be reached; the status is then UNKNOWN

    @classmethod
    def failed(cls, message: str) -> "GuestVerdict":
        """The guest verdict of a run that could not reach one (``Verdict.failed``'s rules):
        UNKNOWN, accel "unknown", no results, ``message`` as one line in ``error``."""
        msg = " ".join(message.splitlines())
        return cls(
            host=HostFacts(hostname="", arch="", kernel="", os="", virtual=None),
            accel="unknown",
            hypervisor=None,
            nested=None,
            evidence=(),
            summary=msg,
            results=(),
            error=msg,
        )

    @property
    def status(self) -> Status:
        if self.error is not None:
            return Status.UNKNOWN
        return Status.worst([r.status for r in self.results])

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


def live_record(verdict: Verdict, guest: GuestVerdict) -> dict[str, Any]:
    """What ``collect`` keeps of its own run in the snapshot marker (``live_verdict``,
    docs/SNAPSHOT.md), so a replay with ``--root`` can be held against it: the host run's
    status, ``kvm_usable``, ``acceleration``, ``virt_type`` and each check's state, and the same
    of ``hvcheck guest``."""
    return {
        "status": verdict.status.label,
        "kvm_usable": verdict.kvm_usable,
        "acceleration": verdict.acceleration,
        "virt_type": verdict.virt_type,
        "checks": {r.id: r.status.label for r in verdict.results},
        "guest": {
            "status": guest.status.label,
            "accel": guest.accel,
            "hypervisor": guest.hypervisor,
            "nested": guest.nested,
            "checks": {r.id: r.status.label for r in guest.results},
        },
    }
