"""Per-tenant inductor caches (issue 17, item 3): a build with the scope's restored cache vs one without, same run.

    .kiln/venv/bin/python bench/inductor_cache.py [--repeats N] [--target FILE]

--target FILE: another target than linux-x86_64-v3, as {"recipe": ..., "requires": ...} from libs/targets (for the
CUDA target on a GPU machine: bench/cuda/inductor-cache-target.json, linux-x86_64-cuda-sm90 as the catalog had it
when written; see bench/README.md, "Inductor caches"); the job is otherwise the same.

Each repeat, in turn, all for linux-x86_64-v3 (or --target) in one fixed build folder (KILN_BUILD_DIR, as the worker runs it):
  cold      mlp.pt2 without a cache (it stores one: the scope's cache),
  same      mlp.pt2 again, restoring that cache,
  changed   mlp with one layer changed (its GELU a SiLU: other generated code) restoring that cache,
  changedCold  the same changed model without a cache.
Each is the driver's CLI as the worker runs it (a subprocess, verification in a fresh process and timing included).
Per run it prints the driver's wall, the manifest's build.compileSeconds and the `compiling` phase's wall, and
whether the restored cache changed the code part (it must not); then a JSON summary with the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
# conftest: the driver tests' make_job (the catalog recipe, as the worker writes the job) and run_driver (the
# driver's CLI as a subprocess, as the worker runs it); make_models: the fixture models.
sys.path[:0] = [
    str(REPO / "python" / "driver"),
    str(REPO / "python" / "runtime"),
    str(REPO / "python/driver/tests"),
    str(REPO / "test" / "fixtures"),
]

try:
    import pytest  # noqa: F401 - conftest's fixtures import it
except (
    ImportError
):  # a GPU machine without pytest: conftest only needs its decorator here
    import types

    _stub = types.ModuleType("pytest")
    _stub.fixture = lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f: f)  # type: ignore[attr-defined]
    sys.modules["pytest"] = _stub

from conftest import fixtures_dir, make_job, run_driver
from make_models import MLP, _export

ARCHIVE = "inductor-cache.zip"


def _one_layer_changed(dest: Path) -> Path:
    """The fixture MLP with its middle activation swapped (GELU -> SiLU): one layer of other code."""
    torch.manual_seed(0)
    model = MLP()
    model.net[3] = nn.SiLU()
    ep = _export(
        model,
        (torch.randn(8, 64),),
        {"x": {0: torch.export.Dim("batch", min=1, max=256)}},
    )
    torch.export.save(ep, str(dest))
    return dest


TARGET: dict[
    str, Any
] = {}  # --target: the recipe and requires that replace linux-x86_64-v3's


def _job(**overrides: Any) -> dict[str, Any]:
    job = make_job(3, **overrides)
    if TARGET:
        job.update(
            targetId=TARGET["recipe"]["targetId"],
            recipe=TARGET["recipe"],
            requires=TARGET["requires"],
        )
        if TARGET["recipe"]["device"] == "cuda":
            job["host"] = {**job["host"], "gpuName": torch.cuda.get_device_name(0)}
    return job


def _build(model: Path, base: Path, cache: Path | None) -> dict[str, Any]:
    base.mkdir(parents=True)
    inductor_cache: dict[str, Any] = {"store": True}
    if cache is not None:
        shutil.copyfile(cache, base / ARCHIVE)
        sha = json.loads((cache.parent / "manifest.json").read_text())["inductorCache"][
            "stored"
        ]["sha256"]
        inductor_cache["restore"] = {"archive": ARCHIVE, "sha256": sha}
    start = time.monotonic()
    run = run_driver(model, _job(inductorCache=inductor_cache), base)
    wall = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(
            f"{model.name}: the driver failed ({run.returncode}): {run.stderr[-2000:]}"
        )
    m = run.manifest
    if cache is not None and m["inductorCache"]["restored"] is None:
        raise SystemExit(
            f"{model.name}: the cache was not restored: {m['inductorCache']}"
        )
    return {
        "wallS": round(wall, 2),
        "compileS": m["build"]["compileSeconds"],
        "compilingPhaseS": run.phase_walls["compiling"],
        "code": next(p["sha256"] for p in m["parts"] if p["role"] == "code"),
        "cacheBytes": (m["inductorCache"]["stored"] or {}).get("bytes"),
        "out": run.out,
    }


def bench(repeats: int, root: Path) -> dict[str, Any]:
    mlp = fixtures_dir() / "mlp.pt2"
    changed = _one_layer_changed(root / "mlp-one-layer.pt2")
    rows: list[dict[str, Any]] = []
    for i in range(repeats):
        base = root / f"run-{i}"
        cold = _build(mlp, base / "cold", None)
        cache = cold["out"] / ARCHIVE
        same = _build(mlp, base / "same", cache)
        one = _build(changed, base / "changed", cache)
        one_cold = _build(changed, base / "changed-cold", None)
        row: dict[str, Any] = {"run": i}
        for name, r in (
            ("cold", cold),
            ("same", same),
            ("changed", one),
            ("changedCold", one_cold),
        ):
            row[name] = {k: r[k] for k in ("wallS", "compileS", "compilingPhaseS")}
        row["cacheBytes"] = cold["cacheBytes"]
        # A cache never changes the code: equal code parts with and without it, for both models.
        row["sameCodeWithCache"] = (
            same["code"] == cold["code"] and one["code"] == one_cold["code"]
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(base, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[name][key] for r in rows), 2)

    return {
        "runs": repeats,
        "cacheBytes": rows[0]["cacheBytes"],
        "sameCodeWithCache": all(r["sameCodeWithCache"] for r in rows),
        **{
            f"{name}{key[0].upper()}{key[1:]}": median(name, key)
            for name in ("cold", "same", "changedCold", "changed")
            for key in ("wallS", "compileS")
        },
    }


def _machine() -> dict[str, Any]:
    lscpu = subprocess.run(
        ["lscpu"], capture_output=True, text=True, check=False
    ).stdout
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in lscpu.splitlines()
            if ln.startswith("Model name")
        ),
        "?",
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load": os.getloadavg(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--target",
        type=Path,
        help='{"recipe", "requires"} of another target (JSON file)',
    )
    args = parser.parse_args()
    if args.target:
        TARGET.update(json.loads(args.target.read_text()))
    if not (fixtures_dir() / "mlp.pt2").exists():
        raise SystemExit(
            f"missing fixture mlp.pt2: python test/fixtures/make_models.py {fixtures_dir()}"
        )
    print(json.dumps({"machine": _machine()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="kiln-inductor-cache-") as tmp:
        # The worker's fixed build folder: the same paths in the code on every build (kiln_driver/build.py).
        os.environ["KILN_BUILD_DIR"] = str(Path(tmp) / "kiln-build")
        summary = bench(args.repeats, Path(tmp))
    print(json.dumps({"summary": summary, "machineAfter": _machine()}, indent=2))


if __name__ == "__main__":
    main()
