"""Read back what a run sent to W&B (offline run files) and MLflow (a file store)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

_HEADER = 7  # ":W&B", a 2-byte magic, a version byte
_BLOCK = 32768  # the log's block size; a record header never straddles a block


def wandb_offline_runs(root: Path) -> dict[str, dict[str, list[float]]]:
    """``{run display name: {metric: [values in logged order]}}`` of every offline run file
    under ``root`` (W&B's record log: 4-byte CRC, 2-byte length, 1-byte type, protobuf)."""
    from wandb.proto import wandb_internal_pb2 as pb

    runs: dict[str, dict[str, list[float]]] = {}
    for path in sorted(Path(root).rglob("run-*.wandb")):
        data, pos, name, chunks = path.read_bytes(), _HEADER, str(path), b""
        metrics: dict[str, list[float]] = {}
        while pos + 7 <= len(data):
            if _BLOCK - pos % _BLOCK < 7:
                pos += _BLOCK - pos % _BLOCK
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            chunks += data[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind in (2, 3):  # FIRST / MIDDLE: the record goes on in the next block
                continue
            record = pb.Record()
            record.ParseFromString(chunks)
            chunks = b""
            which = record.WhichOneof("record_type")
            if which == "run":
                name = record.run.display_name
            elif which == "history":
                for item in record.history.item:
                    value = json.loads(item.value_json)
                    if isinstance(value, (int, float)):
                        metrics.setdefault(item.key or "/".join(item.nested_key), []).append(float(value))
        runs[name] = metrics
    return runs


def mlflow_runs(uri: str, experiment: str = "harness") -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{run name: {metric: [(step, value), ...]}}`` of an MLflow experiment."""
    from mlflow.tracking import MlflowClient

    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # as harness.core.tracking does

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run in client.search_runs([exp.experiment_id]) if exp else []:
        out[run.data.tags["mlflow.runName"]] = {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in run.data.metrics}
    return out
