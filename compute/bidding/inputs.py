"""What a job reads: its task's InputSources and, for wasm, the modules given as embedded
InputSources (the v1.1-v1.6 EntryModule shape, and ImportModules); and a short readable name
for each, for bid refusal reasons."""

from __future__ import annotations

from protocol.job import InputSource, Task
from protocol.specs.engines import WasmParams
from protocol.specs.sources import (
    InlineParams,
    IPFSParams,
    LocalParams,
    S3Params,
    URLDownloadParams,
)


def task_inputs(task: Task) -> list[InputSource]:
    """Every input ``task`` reads, in order; ValidationError when wasm params are unreadable."""
    inputs = list(task.input_sources)
    if task.engine.type == "wasm":
        params = task.engine.params_as(WasmParams, "Tasks[0].Engine")
        if not isinstance(params.entry_module, str):
            inputs.append(params.entry_module)
        inputs.extend(params.import_modules)
    return inputs


def may_read_inputs(task: Task) -> bool:
    """Whether ``task`` may read an input (a wasm module may come from storage): cheap, and
    never wrong the other way."""
    return bool(task.input_sources) or task.engine.type == "wasm"


def describe_input(source: InputSource) -> str:
    """``local /data/in.csv (at /inputs)``, ``urlDownload https://h/x (at /in)``, ..."""
    spec = source.source
    text = f"{spec.type} {_where(spec.params)}".strip()
    return f"{text} (at {source.target})" if source.target else text


def _where(params: object) -> str:
    if isinstance(params, InlineParams):
        return "data"
    if isinstance(params, LocalParams):
        return params.source_path
    if isinstance(params, URLDownloadParams):
        return params.url
    if isinstance(params, S3Params):
        return f"s3://{params.bucket}/{params.key}"
    if isinstance(params, IPFSParams):
        return params.cid
    return ""  # a source type this node does not know
