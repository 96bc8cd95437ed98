"""Simulated fleet devices for test/fleet.e2e-spec.ts, through kiln-device's own code paths (kiln_runtime).

Line protocol: one JSON request per stdin line, one JSON answer per stdout line (torch is imported once for all
rounds). A request is a round of the fleet:

    {"api": URL, "token": DEVICE_TOKEN, "pin": PUBLIC_KEY, "model": "name@channel" (or "name" with "version": N),
     "devices": [{"name": "host-00", "cache": DIR, "class": "host", "fingerprint": null | {...},
                  "mode": "real" | "recorded", "recorded": {...}}]}

Every device has its own cache folder, hence its own device id (kiln_runtime.device_id), trust store and telemetry
queue; it resolves as itself (device id sent: a rollout places it), then
- `real` (this host's class): kiln_runtime.run_resolution, exactly what `kiln-device run` does: verify, load, run
  next to the portable graph on two input sizes, compare, time, report;
- `recorded` (the other classes, which this host is not): reports recorded figures for what it was served, per
  version number of the answer: {"<n>": {"speedup": 0.4}} (the artifact ran, that much faster than the portable
  graph), {"<n>": {"errorCode": "LOAD_FAILED"}} (the artifact failed to load; the portable graph ran instead), with
  "portableMs" the portable graph's time; a portable answer reports the portable graph run.
then flushes its telemetry queue (POST /v1/telemetry with the device token). The answer lists, per device, what it
was served and what it reported.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from kiln_runtime import (
    KilnClient,
    RunOptions,
    Telemetry,
    device_id,
    probe_fingerprint,
    run_resolution,
)
from kiln_runtime.download import RetryPolicy
from kiln_runtime.errors import ErrorCode, KilnRuntimeError, LoadError

RETRY = RetryPolicy(attempts=3, backoff_s=0.2, max_backoff_s=1.0, timeout_s=30)
HOST_FINGERPRINT = probe_fingerprint(hostname=False)


def _recorded(
    res: Any, telemetry: Telemetry, fp: dict[str, Any], rules: dict[str, Any]
) -> tuple[str, str]:
    portable_ms = float(rules.get("portableMs", 1.0))
    shapes = [[8, 64]]
    if res.artifact is None:
        telemetry.record(
            res,
            fingerprint=fp,
            ran="portable",
            outcome="ok",
            latency=[{"inputShapes": shapes, "portableMs": portable_ms, "runs": 20}],
        )
        return "portable", "ok"
    rule = rules.get(str(res.version_number), {})
    if "errorCode" in rule:
        error = LoadError(
            rule["errorCode"],
            "recorded: the artifact does not load on this device class",
        )
        telemetry.record(
            res,
            fingerprint=fp,
            ran="portable",
            outcome="failed",
            error=error,
            latency=[{"inputShapes": shapes, "portableMs": portable_ms, "runs": 20}],
        )
        return "portable", "failed"
    speedup = float(rule.get("speedup", 1.0))
    telemetry.record(
        res,
        fingerprint=fp,
        ran="artifact",
        outcome="ok",
        latency=[
            {
                "inputShapes": shapes,
                "artifactMs": portable_ms / speedup,
                "portableMs": portable_ms,
                "runs": 20,
            }
        ],
    )
    return "artifact", "ok"


def run_device(request: dict[str, Any], device: dict[str, Any]) -> dict[str, Any]:
    client = KilnClient(
        request["api"],
        request["token"],
        cache=device["cache"],
        pinned_keys=request["pin"],
        retry=RETRY,
    )
    fp = device.get("fingerprint") or HOST_FINGERPRINT
    me = device_id(client.cache)
    telemetry = Telemetry(client)
    res = client.resolve(
        request["model"], fingerprint=fp, device_id=me, version=request.get("version")
    )
    out: dict[str, Any] = {
        "name": device["name"],
        "class": device["class"],
        "deviceId": me,
        "version": res.version_number,
        "arm": res.rollout.arm if res.rollout else None,
        "rolloutReason": res.rollout.reason if res.rollout else None,
        "deviceClass": res.device_class,
        "artifactId": res.artifact.id if res.artifact else None,
        "targetId": res.artifact.target_id if res.artifact else None,
        "basis": res.artifact.basis if res.artifact else None,
        "speedup": res.artifact.speedup if res.artifact else None,
        "reasons": list(res.artifact.reasons)
        if res.artifact
        else [res.fallback.reason],
        "rejected": list(res.rejected),
    }
    if device["mode"] == "real":
        try:
            ran = run_resolution(
                res,
                client,
                fingerprint=fp,
                telemetry=telemetry,
                options=RunOptions(runs=5, warmup=1, sizes=2, fallback=True),
            )
            out.update(
                ran=ran["ran"]["kind"],
                outcome="failed" if ran["fallbackError"] else "ok",
            )
            out["measuredSpeedup"] = ran["speedup"]
            if ran["mismatch"] is not None:
                out["outcome"] = "failed"
        except KilnRuntimeError as exc:
            out.update(ran="none", outcome="failed", error=exc.code)
    else:
        ran, outcome = _recorded(res, telemetry, fp, device["recorded"])
        out.update(ran=ran, outcome=outcome)
    flushed = telemetry.flush()
    out["telemetry"] = {
        "sent": flushed.sent,
        "kept": flushed.kept,
        "error": flushed.error,
    }
    return out


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        answers = []
        for device in request["devices"]:
            try:
                answers.append(run_device(request, device))
            except KilnRuntimeError as exc:
                answers.append(
                    {"name": device["name"], "error": exc.code, "message": exc.message}
                )
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
                answers.append(
                    {
                        "name": device["name"],
                        "error": ErrorCode.RUN_FAILED,
                        "message": traceback.format_exc()[-2000:],
                    }
                )
                print(f"fleet_devices: {exc}", file=sys.stderr)
        print(json.dumps({"devices": answers, "host": HOST_FINGERPRINT}), flush=True)


if __name__ == "__main__":
    main()
