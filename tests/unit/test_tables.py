"""The ``--output table`` views keep their shape whatever the cells hold."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from cli.tables import history_table, jobs_table
from protocol.history import JobHistory
from protocol.job import Job


def _rendered(job: Job, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(jobs_table([job]))
    return out.getvalue().splitlines()


@pytest.mark.parametrize("name", ["n" * 1_000_000, "word " * 200_000], ids=["one-word", "words"])
def test_a_one_megabyte_job_name_is_cut_with_an_ellipsis_and_the_id_kept(name: str) -> None:
    job = Job.model_validate(
        {
            "ID": "j-0123abcd-0000-0000-0000-000000000000",
            "Name": name,
            "Labels": {"team": "x" * 10_000},
            "Tasks": [{"Engine": {"Type": "noop"}}],
        }
    )
    lines = _rendered(job, width=100)
    assert len(lines) == 3  # header, rule, one row: nothing wraps
    assert all(len(line) <= 100 for line in lines)
    row = lines[2]
    assert row.startswith("j-0123abcd")  # what people copy is never cut
    assert "…" in row
    assert " Pending " in row  # the short columns keep their width
    assert " batch " in row


def test_a_long_history_message_stays_on_one_line() -> None:
    entry = JobHistory.model_validate(
        {
            "Type": "JobLevel",
            "JobID": "j-1",
            "Time": "2026-12-07T10:00:00Z",
            "JobState": {"Previous": "Pending", "New": "Failed"},
            "Event": {"Message": "no node could run the job: " + "a: busy; " * 50_000},
        }
    )
    out = io.StringIO()
    Console(file=out, width=90, color_system=None).print(history_table([entry]))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "Pending -> Failed" in lines[2]
    assert lines[2].rstrip().endswith("…")
