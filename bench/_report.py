"""Tables of measured phases: one per job kind, bacalao next to Celery and their ratio."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bench._measure import Phase

Figure = Callable[[Phase], float | None]
_NAME_WIDTH = 40
_VALUE_WIDTH = 11
_TOP_COMMANDS = 8


@dataclass(frozen=True)
class Row:
    name: str
    value: Figure
    ratio: bool = True
    celery_has: bool = True  # False: Celery has no such thing ("-", not "n/a")


def _store(phase: Phase, attribute: str) -> float | None:
    if phase.store is None:
        return None
    return phase.per_job(getattr(phase.store, attribute))


COST_ROWS = (
    Row("CPU-ms/job (started processes)", lambda p: p.per_job(p.cpu_ms)),
    Row("  client CPU-ms/job (this process)", lambda p: p.per_job(p.client_cpu_ms)),
    Row("redis commands/job", lambda p: p.per_job(p.redis.total)),
    Row("redis round trips/job", lambda p: p.per_job(p.redis.reads)),
    Row("SQLite transactions/job", lambda p: _store(p, "transactions"), celery_has=False),
    Row("SQLite statements/job", lambda p: _store(p, "statements"), celery_has=False),
    Row("failed", lambda p: p.outcome.failed, ratio=False),
    Row("wall time (s)", lambda p: p.wall_s, ratio=False),
)
THROUGHPUT_ROWS = (
    Row("throughput (jobs/s)", lambda p: p.outcome.throughput),
    Row("  submitted (jobs/s, client side)", lambda p: p.outcome.submit_rate),
    *COST_ROWS,
)
LATENCY_ROWS = (
    Row("latency p50 (ms)", lambda p: p.percentile(50)),
    Row("latency p95 (ms)", lambda p: p.percentile(95)),
    Row("latency p99 (ms)", lambda p: p.percentile(99)),
    *COST_ROWS,
)


def number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    if value == int(value) and abs(value) >= 10:
        return f"{int(value)}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(phase: Phase | None, row: Row, system: str) -> tuple[str, float | None]:
    if phase is None:
        return "-", None
    if system == "celery" and not row.celery_has:
        return "-", None
    value = row.value(phase)
    return number(value), value


def _line(name: str, *cells: str) -> str:
    return name.ljust(_NAME_WIDTH) + "".join(cell.rjust(_VALUE_WIDTH) for cell in cells)


def _block(label: str, pair: dict[str, Phase], rows: Sequence[Row]) -> list[str]:
    lines = [f"  {label}"]
    for row in rows:
        b_text, b_value = _cell(pair.get("bacalao"), row, "bacalao")
        c_text, c_value = _cell(pair.get("celery"), row, "celery")
        ratio = "-"
        if row.ratio and b_value is not None and c_value:
            ratio = f"{b_value / c_value:.2f}"
        lines.append(_line(f"    {row.name}", b_text, c_text, ratio))
    return lines


def kind_table(kind: str, title: str, phases: Iterable[Phase]) -> list[str]:
    """The table of one job kind: a block of rows per phase label, in the order run."""
    blocks: dict[str, dict[str, Phase]] = {}
    for phase in phases:
        if phase.kind == kind:
            blocks.setdefault(phase.label, {})[phase.system] = phase
    if not blocks:
        return []
    lines = [_line(title, "bacalao", "celery", "ratio"), "-" * (_NAME_WIDTH + 3 * _VALUE_WIDTH)]
    for label, pair in blocks.items():
        rows = LATENCY_ROWS if label.endswith("sequential") else THROUGHPUT_ROWS
        lines.extend(_block(label, pair, rows))
    lines.extend(_notes(blocks))
    return lines


def _notes(blocks: dict[str, dict[str, Phase]]) -> list[str]:
    lines = []
    for label, pair in blocks.items():
        for system, phase in pair.items():
            if phase.outcome.note:
                lines.append(f"  note: {system}, {label}: {phase.outcome.note}")
    throughput_labels = [label for label in blocks if not label.endswith("sequential")]
    for label in throughput_labels:
        for system, phase in blocks[label].items():
            if phase.rss_mib_by:
                lines.append(f"  RSS after (MiB), {system}, {label}: {rss_split(phase)}")
    largest = throughput_labels[-1:]
    for label in largest:
        for system, phase in blocks[label].items():
            lines.append(f"  redis commands/job, {system}, {label}: {top_commands(phase)}")
            if phase.cpu_ms_by:
                lines.append(f"  CPU-ms/job by process, {system}, {label}: {cpu_split(phase)}")
    return lines


def cpu_split(phase: Phase) -> str:
    shown = [f"{name} {number(phase.per_job(ms))}" for name, ms in phase.cpu_ms_by.items()]
    return ", ".join(shown) + f", client {number(phase.per_job(phase.client_cpu_ms))}"


def rss_split(phase: Phase) -> str:
    """Resident memory of each process once the phase ended: the requester's should follow
    the jobs in flight (none by then), not the jobs ever run."""
    return ", ".join(f"{name} {ms:.0f}" for name, ms in phase.rss_mib_by.items())


def top_commands(phase: Phase) -> str:
    ranked = sorted(phase.redis.commands.items(), key=lambda item: -item[1])
    shown = [f"{name} {number(phase.per_job(calls))}" for name, calls in ranked[:_TOP_COMMANDS]]
    rest = sum(calls for _, calls in ranked[_TOP_COMMANDS:])
    if rest:
        shown.append(f"other {number(phase.per_job(rest))}")
    return ", ".join(shown) or "none"
