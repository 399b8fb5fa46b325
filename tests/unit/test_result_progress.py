"""Progress of ``bacalao job get`` downloads: ``download_result`` tells a TransferProgress the
size and each chunk of a ``urlDownload`` result (served here by an ``httpx.MockTransport``),
and the CLI shows a bar only when stderr is a terminal. The ``s3`` and ``ipfs`` cases run
against real servers in ``tests/integration``."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from cli.progress import BarProgress, download_progress
from protocol.errors import TransportError
from protocol.job import SpecConfig
from protocol.results import download_result
from tests.support.progress import RecordingProgress

URL = "http://results.test/e-1/stdout"
CHUNK_BYTES = 1000
BODY = bytes(range(256)) * 40  # 10240 bytes: 11 chunks


def chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK_BYTES):
        yield body[start : start + CHUNK_BYTES]


def serving(body: bytes, headers: Mapping[str, str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=dict(headers), content=chunks(body))

    return httpx.MockTransport(handler)


def fetch(tmp_path: Path, body: bytes, headers: Mapping[str, str]) -> RecordingProgress:
    progress = RecordingProgress()
    download_result(
        SpecConfig(type="urlDownload", params={"URL": URL}),
        tmp_path / "out",
        progress=progress,
        transport=serving(body, headers),
    )
    return progress


def test_url_download_counts_every_chunk_against_the_content_length(tmp_path: Path) -> None:
    progress = fetch(tmp_path, BODY, {"Content-Length": str(len(BODY))})

    assert progress.started == [(URL, len(BODY))]
    assert progress.grew_to(len(BODY))
    assert len(progress.counts) == 11
    assert (tmp_path / "out" / "stdout").read_bytes() == BODY


def test_url_download_without_a_length_has_no_total(tmp_path: Path) -> None:
    progress = fetch(tmp_path, BODY, {"Transfer-Encoding": "chunked"})

    assert progress.started == [(URL, None)]
    assert progress.grew_to(len(BODY))


def test_an_encoded_body_length_is_no_total(tmp_path: Path) -> None:
    packed = gzip.compress(BODY)
    headers = {"Content-Length": str(len(packed)), "Content-Encoding": "gzip"}
    progress = fetch(tmp_path, packed, headers)

    assert progress.started == [(URL, None)]
    assert progress.received_bytes == len(BODY)  # counted as decoded
    assert (tmp_path / "out" / "stdout").read_bytes() == BODY


def test_an_archive_result_is_counted_before_it_is_extracted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("outputs/data.bin")
        info.size = len(BODY)
        tar.addfile(info, io.BytesIO(BODY))
    archive = buffer.getvalue()

    progress = fetch(tmp_path, archive, {"Content-Length": str(len(archive))})

    assert progress.started == [(URL, len(archive))]
    assert progress.received_bytes == len(archive)
    assert (tmp_path / "out" / "outputs" / "data.bin").read_bytes() == BODY


def test_progress_stops_at_the_size_limit(tmp_path: Path) -> None:
    progress = RecordingProgress()
    with pytest.raises(TransportError, match="larger than 2500 bytes"):
        download_result(
            SpecConfig(type="urlDownload", params={"URL": URL}),
            tmp_path / "out",
            progress=progress,
            transport=serving(BODY, {"Content-Length": str(len(BODY))}),
            max_bytes=2500,
        )
    assert progress.counts == [1000, 2000]
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left


def test_a_bar_only_when_stderr_is_a_terminal() -> None:
    with download_progress(Console(file=io.StringIO(), force_terminal=False)) as none:
        assert none is None
    screen = io.StringIO()
    with download_progress(Console(file=screen, force_terminal=True, width=100)) as bar:
        assert isinstance(bar, BarProgress)
        bar.start("ipfs://bafy", 3000)
        for _ in range(3):
            bar.advance(1000)
    shown = screen.getvalue()
    assert "ipfs://bafy" in shown
    assert "3.0/3.0 kB" in shown  # the last frame, before the bar clears itself
