"""The build directory of one export and its `report.json`: what each stage made and measured.

Layout: `<build_dir>/onnx/<graph>.onnx`, `<build_dir>/plans/<graph>.plan`, `<build_dir>/report.json`. Later stages
read earlier stages' results from the report, so `--stage` can resume; a file whose hash is not the one its
stage recorded (replaced or edited since) is refused, as is a build directory of another checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_FILE = "report.json"


class ReportError(RuntimeError):
    """The build directory lacks what a stage needs, or holds another checkpoint's artifacts."""


@dataclass(frozen=True)
class BuildLayout:
    root: Path

    @property
    def report_path(self) -> Path:
        return self.root / REPORT_FILE

    def onnx(self, graph: str) -> Path:
        return self.root / "onnx" / f"{graph}.onnx"

    def plan(self, graph: str) -> Path:
        return self.root / "plans" / f"{graph}.plan"


class Report:
    """report.json as a dict, saved after every change so an interrupted run still says what it did."""

    def __init__(self, layout: BuildLayout, data: dict[str, Any]) -> None:
        self.layout = layout
        self.data = data

    @classmethod
    def start(cls, layout: BuildLayout, checkpoint: dict[str, Any]) -> Report:
        """A fresh report (stage 1 starts one; earlier results of the build directory are dropped)."""
        report = cls(layout, {"checkpoint": checkpoint, "graphs": {}, "stages": {}})
        report.save()
        return report

    @classmethod
    def load(cls, layout: BuildLayout, checkpoint: dict[str, Any]) -> Report:
        if not layout.report_path.is_file():
            raise ReportError(f"{layout.root} has no {REPORT_FILE}; run stage 1 (onnx) first")
        data = json.loads(layout.report_path.read_text())
        if data.get("checkpoint", {}).get("path") != checkpoint["path"]:
            raise ReportError(
                f"{layout.root} holds an export of {data.get('checkpoint', {}).get('path')}, not of "
                f"{checkpoint['path']}; run stage 1 (onnx) again or use another --build-dir"
            )
        return cls(layout, data)

    def save(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.layout.report_path.write_text(json.dumps(self.data, indent=2, sort_keys=False) + "\n")

    def graph(self, name: str) -> dict[str, Any]:
        graphs: dict[str, Any] = self.data.setdefault("graphs", {})
        entry: dict[str, Any] = graphs.setdefault(name, {})
        return entry

    def put(self, graph: str, key: str, value: Any) -> None:
        self.graph(graph)[key] = value
        self.save()

    def stage(self, name: str, value: dict[str, Any]) -> None:
        self.data.setdefault("stages", {})[name] = value
        self.save()

    def exported(self) -> list[str]:
        return [name for name, entry in self.data.get("graphs", {}).items() if "onnx" in entry]

    def require(self, graph: str, key: str, what: str, stage: str) -> dict[str, Any]:
        entry = self.data.get("graphs", {}).get(graph, {}).get(key)
        if entry is None:
            raise ReportError(f"{graph}: no {what} in {self.layout.report_path}; run stage {stage} first")
        value: dict[str, Any] = entry
        return value
