"""Helper of bench/exportdb.ts: torch's ExportDB examples, exported as a user would, and the plain AOTInductor
reproduction of a failure, outside Kiln.

    python bench/exportdb.py export OUT_DIR
        Exports every example of torch._export.db.examples.all_examples() with its own example_args,
        example_kwargs and dynamic_shapes (torch.export.export, default options) and saves it to
        OUT_DIR/<name>.pt2. Writes OUT_DIR/index.json: one entry per example, exported or not (with the
        reason torch gave).

    python bench/exportdb.py plain NAME MODEL.pt2 OUT_DIR [--configs JSON] [--atol A --rtol R]
        What a user would do with the same file, without Kiln: torch.export.load, aoti_compile_and_package
        (torch's default options, or exactly `--configs`), aoti_load_package, then the program and the
        artifact on the example's own inputs, compared leaf by leaf (type, shape, dtype, allclose).
        Prints one JSON line: {"ok", "stage": "compile|load|run|compare|done", "error", "maxAbsError"}.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any


def _cases() -> dict[str, Any]:
    from torch._export.db.examples import all_examples

    return dict(sorted(all_examples().items()))


def _first_line(exc: BaseException) -> str:
    """The exception's first line; for a C++ compile error the compiler's first `error:` line, file name only."""
    lines = str(exc).strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    if errors and "CppCompileError" in type(exc).__name__:
        return f"{type(exc).__name__}: {errors[0].strip().rsplit('/', 1)[-1]}"[:400]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


def export_all(out_dir: Path) -> int:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for name, case in _cases().items():
        entry: dict[str, Any] = {
            "name": name,
            "tags": sorted(case.tags),
            "supportLevel": case.support_level.name,
        }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ep = torch.export.export(
                    case.model,
                    copy.deepcopy(case.example_args),
                    copy.deepcopy(case.example_kwargs),
                    dynamic_shapes=case.dynamic_shapes,
                )
            path = out_dir / f"{name}.pt2"
            torch.export.save(ep, str(path))
            entry.update(exported=True, file=str(path))
        except Exception as exc:  # noqa: BLE001 - torch refuses the example: listed, with its reason
            entry.update(exported=False, reason=_first_line(exc))
        index.append(entry)
        print(
            f"{name}: {'exported' if entry['exported'] else 'not exported: ' + entry['reason']}",
            file=sys.stderr,
        )
    (out_dir / "index.json").write_text(
        json.dumps({"torch": torch.__version__, "examples": index}, indent=2)
    )
    return 0


def _kind(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"a {value.dim()}-d {str(value.dtype).removeprefix('torch.')} tensor"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def compare(
    expected: Any, actual: Any, atol: float, rtol: float
) -> tuple[list[str], float]:
    """Leaf by leaf: the same structure, types, shapes and dtypes, and values within the tolerance."""
    import torch
    from torch.utils._pytree import tree_flatten

    want, _ = tree_flatten(expected)
    got, _ = tree_flatten(actual)
    if len(want) != len(got):
        return [
            f"the artifact returns {len(got)} outputs, the program {len(want)}"
        ], math.inf
    problems: list[str] = []
    max_abs = 0.0
    for i, (e, a) in enumerate(zip(want, got, strict=True)):
        tensors = isinstance(e, torch.Tensor), isinstance(a, torch.Tensor)
        if tensors[0] != tensors[1] or (not tensors[0] and type(e) is not type(a)):
            problems.append(
                f"output {i} is {_kind(e)} in the program and {_kind(a)} in the artifact"
            )
            continue
        if not isinstance(e, torch.Tensor):
            if e != a:
                problems.append(f"output {i}: {a!r} != {e!r}")
            continue
        if e.shape != a.shape or e.dtype != a.dtype:
            problems.append(
                f"output {i} is a {tuple(e.shape)} {e.dtype} in the program, {tuple(a.shape)} {a.dtype}"
            )
            continue
        if e.numel() == 0:
            continue
        e64, a64 = e.detach().double(), a.detach().double()
        diff = torch.nan_to_num((a64 - e64).abs(), nan=0.0)
        max_abs = max(max_abs, float(diff.max()))
        if not torch.allclose(a64, e64, atol=atol, rtol=rtol, equal_nan=True):
            problems.append(
                f"output {i}: max abs error {float(diff.max()):.3g} beyond atol={atol} rtol={rtol}"
            )
    return problems, max_abs


def plain(
    name: str,
    model: Path,
    out_dir: Path,
    configs: dict[str, Any] | None,
    atol: float,
    rtol: float,
) -> int:
    import torch

    case = _cases()[name]
    result: dict[str, Any] = {
        "ok": False,
        "stage": "compile",
        "error": None,
        "maxAbsError": None,
    }

    def done() -> int:
        print(json.dumps(result))
        return 0

    ep = torch.export.load(str(model))
    start = time.monotonic()
    try:
        package = torch._inductor.aoti_compile_and_package(
            ep, package_path=str(out_dir / "plain.pt2"), inductor_configs=configs
        )
    except Exception as exc:  # noqa: BLE001 - the outcome is the answer
        result["error"] = _first_line(getattr(exc, "inner_exception", None) or exc)
        traceback.print_exc()
        return done()
    result["compileSeconds"] = round(time.monotonic() - start, 1)
    result["stage"] = "load"
    try:
        compiled = torch._inductor.aoti_load_package(package)
    except Exception as exc:  # noqa: BLE001
        result["error"] = _first_line(exc)
        return done()
    result["stage"] = "run"
    with torch.no_grad():
        expected = ep.module()(
            *copy.deepcopy(case.example_args), **copy.deepcopy(case.example_kwargs)
        )
        try:
            actual = compiled(
                *copy.deepcopy(case.example_args), **copy.deepcopy(case.example_kwargs)
            )
        except Exception as exc:  # noqa: BLE001
            result["error"] = _first_line(exc)
            return done()
    result["stage"] = "compare"
    problems, max_abs = compare(expected, actual, atol, rtol)
    result["maxAbsError"] = max_abs if math.isfinite(max_abs) else None
    if problems:
        result["error"] = "; ".join(problems)
        return done()
    result.update(ok=True, stage="done")
    return done()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export")
    exp.add_argument("out_dir", type=Path)
    pl = sub.add_parser("plain")
    pl.add_argument("name")
    pl.add_argument("model", type=Path)
    pl.add_argument("out_dir", type=Path)
    pl.add_argument(
        "--configs", help="inductor options as JSON (default: torch's defaults)"
    )
    pl.add_argument("--atol", type=float, default=1e-4)
    pl.add_argument("--rtol", type=float, default=1e-3)
    args = parser.parse_args()
    if args.command == "export":
        return export_all(args.out_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    configs = json.loads(args.configs) if args.configs else None
    return plain(args.name, args.model, args.out_dir, configs, args.atol, args.rtol)


if __name__ == "__main__":
    sys.exit(main())
