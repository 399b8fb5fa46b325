"""What a job reads: its task's InputSources and, for wasm, the modules given as embedded
InputSources (the v1.1-v1.6 EntryModule shape, and ImportModules); and a short readable name
for each, for bid refusal reasons."""

from __future__ import annotations

from protocol.job import InputSource, Task
from protocol.specs import ENGINES, SOURCES
from protocol.specs.engines import WasmParams


def task_inputs(task: Task) -> list[InputSource]:
    """Every input ``task`` reads, in order; ValidationError when wasm params are unreadable."""
    inputs = list(task.input_sources)
    if ENGINES.canonical(task.engine.type) == "wasm":
        params = ENGINES.parse_as(task.engine, WasmParams, "Tasks[0].Engine")
        if not isinstance(params.entry_module, str):
            inputs.append(params.entry_module)
        inputs.extend(params.import_modules)
    return inputs


def may_read_inputs(task: Task) -> bool:
    """Whether ``task`` may read an input (a wasm module may come from storage): cheap, and
    never wrong the other way."""
    return bool(task.input_sources) or ENGINES.canonical(task.engine.type) == "wasm"


def describe_input(source: InputSource) -> str:
    """``local /data/in.csv (at /inputs)``, ``urlDownload https://h/x (at /in)``, ..."""
    spec = source.source
    params = {key.lower(): value for key, value in spec.params.items()}
    where = ""
    if SOURCES.canonical(spec.type) == "inline":
        where = "data"
    elif "sourcepath" in params:
        where = str(params["sourcepath"])
    elif "url" in params:
        where = str(params["url"])
    elif "bucket" in params:
        where = f"s3://{params['bucket']}/{params.get('key', '')}"
    elif "cid" in params:
        where = str(params["cid"])
    text = f"{spec.type} {where}".strip()
    return f"{text} (at {source.target})" if source.target else text
