"""Run reports back to Kiln (POST /v1/telemetry): what the resolver chose, whether it verified, loaded and ran, and
on-device latency of the artifact and the portable graph per input size. The resolver ranks artifacts for a device
class by them, quarantines ones that fail on a class, and staged rollouts are gated by them (docs/fleet.md).

Opt-out: `kiln-device run --no-telemetry`, or KILN_TELEMETRY=0 (also off/false/no): nothing is recorded or sent.
Batched and bounded: each report is a file in `<cache>/telemetry/pending/` (named by its UUIDv7 report id, so
names sort by time); at most MAX_PENDING are kept (the oldest go first); a flush sends up to MAX_BATCH per request,
with the device token. Idempotent: the server stores a report id once, so a report sent twice (a lost answer) counts
once. A report the server refuses for good is dropped; one that could not be sent (network, API down) waits for
the next run. Telemetry never fails a run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .cache import write_atomic
from .device_identity import device_id
from .errors import ApiError, KilnRuntimeError, NetworkError
from .resolution import Resolution

log = logging.getLogger("kiln_runtime")
MAX_PENDING = 1000
MAX_BATCH = 100
MAX_BATCHES_PER_FLUSH = 20
_OFF = ("0", "false", "off", "no")


def telemetry_enabled(opt_out: bool = False) -> bool:
    """Off with --no-telemetry or KILN_TELEMETRY=0/false/off/no; on otherwise."""
    return not opt_out and os.environ.get("KILN_TELEMETRY", "").strip().lower() not in _OFF


_last_uuid7 = [0]  # the last id made in this process (a list: mutable without `global`)


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix time in ms, 12 bits of sub-millisecond time (method 3), 62 random bits;
    strictly increasing within a process, so the queue's file names sort in the order reports were made."""
    ns = time.time_ns()
    ms, sub = divmod(ns, 1_000_000)
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | ((sub * 4096 // 1_000_000) << 64)
    value |= (0x2 << 62) | secrets.randbits(62)
    if value <= _last_uuid7[0]:
        value = _last_uuid7[0] + 1  # same instant: one more in the random tail keeps the order
    _last_uuid7[0] = value
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def failure_stage(error: KilnRuntimeError) -> str:
    """Where a run failed, from the error (the telemetry's `failureStage`)."""
    from .errors import IncompatibleArtifactError, LoadError, OutputMismatchError, VerificationError

    if isinstance(error, NetworkError):
        return "download"
    if isinstance(error, (VerificationError, IncompatibleArtifactError)):
        return "verify"
    if isinstance(error, OutputMismatchError):
        return "compare"
    if isinstance(error, LoadError):
        return "run" if error.code == "RUN_FAILED" else "load"
    return "load"


@dataclass
class FlushResult:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    kept: int = 0
    error: str | None = None


class Telemetry:
    """The report queue of one device (one cache folder)."""

    def __init__(self, client: Any, *, enabled: bool = True) -> None:
        self.client = client
        self.enabled = enabled
        self.directory: Path = client.cache.root / "telemetry" / "pending"

    def record(
        self,
        resolution: Resolution,
        *,
        fingerprint: dict[str, Any],
        ran: str,
        outcome: str,
        error: KilnRuntimeError | None = None,
        latency: list[dict[str, Any]] | None = None,
        about_portable: bool = False,
    ) -> str | None:
        """Queues one run's report; returns its id (None when telemetry is off). `about_portable`: the failure
        is the portable graph's, not the chosen artifact's (the report then names no artifact)."""
        if not self.enabled:
            return None
        report: dict[str, Any] = {
            "reportId": uuid7(),
            "modelId": resolution.model_id,
            "versionId": resolution.version_id,
            "ran": ran,
            "outcome": outcome,
            "latency": latency or [],
        }
        if resolution.artifact is not None and not about_portable:
            report["artifactId"] = resolution.artifact.id
        if resolution.rollout is not None:
            report["rolloutId"] = resolution.rollout.id
        if error is not None:
            report["errorCode"] = error.code
            report["failureStage"] = failure_stage(error)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            entry = {"fingerprint": fingerprint, "runtimeVersion": __version__, "report": report}
            write_atomic(self.directory / f"{report['reportId']}.json", json.dumps(entry).encode())
            self._trim()
        except OSError as exc:
            log.warning("telemetry: could not queue a report (%s)", exc)
            return None
        return str(report["reportId"])

    def pending(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def _trim(self) -> None:
        files = self.pending()
        for path in files[: max(0, len(files) - MAX_PENDING)]:
            path.unlink(missing_ok=True)

    def flush(self, *, max_batches: int = MAX_BATCHES_PER_FLUSH) -> FlushResult:
        """Sends what is queued (oldest first, one device per batch, grouped by fingerprint)."""
        result = FlushResult()
        if not self.enabled:
            return result
        groups: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
        for path in self.pending():
            try:
                entry = json.loads(path.read_text())
                key = json.dumps(entry["fingerprint"], sort_keys=True)
                groups.setdefault(key, []).append((path, entry))
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)  # unreadable: it would never send
        me = device_id(self.client.cache)
        batches = 0
        for entries in groups.values():
            for start in range(0, len(entries), MAX_BATCH):
                if batches >= max_batches:
                    result.kept += len(entries) - start
                    break
                chunk = entries[start : start + MAX_BATCH]
                batch = {
                    "deviceId": me,
                    "fingerprint": chunk[0][1]["fingerprint"],
                    "runtimeVersion": chunk[0][1].get("runtimeVersion", __version__),
                    "reports": [e["report"] for _, e in chunk],
                }
                batches += 1
                try:
                    answer = self.client.send_telemetry(batch)
                except ApiError as exc:
                    if exc.status in (400, 404, 413, 422):
                        # Refused as malformed: it would be refused again. Dropped, not retried forever.
                        log.warning("telemetry: the API refused %d reports (%s); dropped", len(chunk), exc.message)
                        for path, _ in chunk:
                            path.unlink(missing_ok=True)
                        result.rejected += len(chunk)
                        continue
                    result.kept += len(chunk)
                    result.error = f"{exc.api_code}: {exc.message}"
                    return result
                except KilnRuntimeError as exc:
                    result.kept += len(chunk)
                    result.error = f"{exc.code}: {exc.message}"
                    return result
                for path, _ in chunk:
                    path.unlink(missing_ok=True)
                result.sent += len(chunk)
                result.accepted += int(answer.get("accepted") or 0)
                result.duplicates += int(answer.get("duplicates") or 0)
                result.rejected += len(answer.get("rejected") or [])
        return result
