"""`kiln-device` (also `python -m kiln_runtime`): fingerprint, fetch, run, keys. See README.md for exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .cache import Cache
from .client import DEFAULT_API_URL, KilnClient
from .download import Progress
from .errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    ApiError,
    ErrorCode,
    KilnRuntimeError,
    LoadError,
    OutputMismatchError,
    UsageError,
)
from .fingerprint import validate_fingerprint
from .needs import check_needs, js_number
from .probe import probe_fingerprint
from .resolution import Resolution
from .x86_levels import device_x86_level

log = logging.getLogger("kiln_runtime")
DEFAULT_ATOL, DEFAULT_RTOL = 1e-4, 1e-3


def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ helpers


def _progress_factory(enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None

    def factory(desc: str, total: int | None, initial: int) -> Progress:
        return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)

    return factory


def _client(args: argparse.Namespace) -> KilnClient:
    return KilnClient(
        args.api,
        args.token,
        cache=args.cache_dir,
        progress=_progress_factory(not args.no_progress),
    )


def _fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    """The fingerprint to send: --fingerprint FILE (simulating another device) or this host's probe."""
    if args.fingerprint:
        try:
            fp = json.loads(Path(args.fingerprint).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(ErrorCode.BAD_FINGERPRINT, f"--fingerprint {args.fingerprint}: {exc}") from exc
        problems = validate_fingerprint(fp)
        if problems:
            raise UsageError(
                ErrorCode.BAD_FINGERPRINT, f"--fingerprint {args.fingerprint}: " + "; ".join(problems[:10])
            )
        return fp
    fp = probe_fingerprint()
    if fp["torch"] is None:
        raise LoadError(
            ErrorCode.TORCH_MISSING,
            "torch is not installed, so this host cannot run any model (nor describe its torch build); "
            "install torch, or pass --fingerprint FILE to resolve for another device",
        )
    return fp


def _resolve(args: argparse.Namespace, client: KilnClient, fp: dict[str, Any]) -> Resolution:
    return client.resolve(args.model, fingerprint=fp, version=args.version, channel=args.channel)


def _device_summary(fp: dict[str, Any]) -> str:
    cpu = fp.get("cpu") or {}
    bits = [f"{fp.get('os')}/{fp.get('arch')}"]
    if fp.get("arch") == "x86_64" and (cpu.get("flags") or cpu.get("x86Level")):
        bits.append(f"x86-64-v{device_x86_level(cpu).level}")
    torch = fp.get("torch") or {}
    bits.append(f"torch {torch.get('version')}")
    bits.extend(f"{g['name']} ({g['computeCapability']})" for g in fp.get("gpus") or [])
    return ", ".join(bits)


def explain(res: Resolution, fp: dict[str, Any], simulated: bool) -> None:
    """The resolver's choice in words: what was picked and why, what else fits, what was rejected and why."""
    who = "the device in --fingerprint" if simulated else "this device"
    say(f"resolved {res.describe_version()} for {who} ({_device_summary(fp)})")
    art = res.artifact
    if art is not None:
        say(
            f"chosen: {art.target_id} (artifact {art.id}), {js_number(art.speedup)}x faster than the portable "
            "graph on the build host"
        )
        for reason in art.reasons:
            say(f"  - {reason}")
        others = [r for r in res.ranked if r.get("artifactId") != art.id]
        if others:
            say(
                "also compatible: "
                + ", ".join(f"{r.get('targetId')} ({js_number(float(r.get('speedup') or 0))}x)" for r in others)
            )
    else:
        say("chosen: the portable graph (no compiled artifact)")
        say(f"  - {res.fallback.reason}")
    for rej in res.rejected:
        reasons = rej.get("reasons") or []
        say(f"rejected: {rej.get('targetId')} (artifact {rej.get('artifactId')}), because it")
        for reason in reasons:
            say(f"  - {reason}")
    if art is not None:
        say(f"fallback: {res.fallback.reason}")


def _resolution_json(res: Resolution) -> dict[str, Any]:
    art = res.artifact
    return {
        "model": {"id": res.model_id, "name": res.model_name},
        "version": {
            "id": res.version_id,
            "number": res.version_number,
            "selectedBy": res.selected_by,
            "channel": res.channel,
        },
        "chosen": {
            "kind": "artifact",
            "artifactId": art.id,
            "targetId": art.target_id,
            "speedup": art.speedup,
            "reasons": list(art.reasons),
        }
        if art is not None
        else {"kind": "portable", "reasons": [res.fallback.reason]},
        "ranked": list(res.ranked),
        "rejected": list(res.rejected),
    }


def _emit(args: argparse.Namespace, data: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(data, indent=2))


# ----------------------------------------------------------------------------------------------- commands


def cmd_fingerprint(args: argparse.Namespace) -> int:
    fp = probe_fingerprint(with_torch=not args.no_torch, hostname=not args.no_hostname)
    print(json.dumps(fp, indent=2))
    if fp["torch"] is None:
        say(
            "kiln-device: torch is not importable: the fingerprint has no torch build (torch: null), which the "
            "resolver refuses; install torch to run models"
        )
        return EXIT_OK
    problems = validate_fingerprint(fp)
    for p in problems:
        say(f"kiln-device: invalid fingerprint: {p}")
    return EXIT_INTERNAL if problems else EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    client = _client(args)
    fp = _fingerprint(args)
    res = _resolve(args, client, fp)
    explain(res, fp, bool(args.fingerprint))
    out = _resolution_json(res)
    if res.artifact is None:
        path = client.fetch_portable(res.fallback)
        say(f"verified: portable graph sha256 {res.fallback.sha256} ({res.fallback.size} bytes)")
        out.update(path=str(path), verified={"sha256": res.fallback.sha256})
    else:
        fetched = client.fetch_artifact(res.artifact)
        say(
            f"verified: manifest signature (key {fetched.manifest.signing_key_id}), "
            + ", ".join(f"{p.role} part sha256 {p.sha256[:12]}… ({p.size} bytes)" for p, _ in fetched.parts)
        )
        host = check_needs(probe_fingerprint(hostname=False), fetched.manifest.data)
        if host.compatible:
            say("this host meets every requirement of the signed manifest")
        else:
            say("note: this host could not load it: " + "; ".join(host.failed))
        out.update(
            path=str(fetched.package),
            verified={
                "manifestSha256": fetched.manifest.sha256,
                "signingKeyId": fetched.manifest.signing_key_id,
                "parts": [
                    {"role": p.role, "sha256": p.sha256, "size": p.size, "path": str(path)} for p, path in fetched.parts
                ],
            },
            hostCompatible=host.compatible,
            hostProblems=host.failed,
        )
    if args.json:
        _emit(args, out)
    else:
        print(out["path"])
    return EXIT_OK


def _median_ms(a: Any, b: Any, inputs: Any, *, warmup: int, runs: int) -> tuple[float, float]:
    """Median wall time of one call of `a` and of `b`, their calls interleaved so that both see the same
    load on a shared machine (timing one block after the other mostly measures whatever else ran then)."""
    args, kwargs = inputs.args, inputs.kwargs
    for _ in range(warmup):
        a(*args, **kwargs)
        b(*args, **kwargs)
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(runs):
        for fn, times in ((a, times_a), (b, times_b)):
            t0 = time.perf_counter()
            fn(*args, **kwargs)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times_a), statistics.median(times_b)


def compare_outputs(actual: Any, expected: Any, atol: float, rtol: float) -> tuple[float, bool, list[str]]:
    """Max abs error over every output tensor, whether all are within allclose(atol, rtol), and problems."""
    import torch
    from torch.utils._pytree import tree_flatten

    got, _ = tree_flatten(actual)
    want, _ = tree_flatten(expected)
    if len(got) != len(want):
        return float("inf"), False, [f"{len(got)} outputs, the portable graph gives {len(want)}"]
    max_abs, ok, problems = 0.0, True, []
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if not isinstance(b, torch.Tensor):
            if a != b:
                ok = False
                problems.append(f"output {i}: {a!r} != {b!r}")
            continue
        if not isinstance(a, torch.Tensor) or a.shape != b.shape:
            ok = False
            problems.append(f"output {i}: shape {getattr(a, 'shape', None)} != {tuple(b.shape)}")
            max_abs = float("inf")
            continue
        a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
        if a64.numel():
            max_abs = max(max_abs, float((a64 - b64).abs().max()))
        if not torch.allclose(a64, b64, atol=atol, rtol=rtol, equal_nan=True):
            ok = False
            problems.append(f"output {i}: outside atol {atol} / rtol {rtol}")
    return max_abs, ok, problems


def cmd_run(args: argparse.Namespace) -> int:
    from .loader import load, load_portable, require_torch

    torch = require_torch()
    client = _client(args)
    fp = _fingerprint(args)
    res = _resolve(args, client, fp)
    explain(res, fp, bool(args.fingerprint))

    # The choice first, so that a refused artifact stops the run before anything at all is loaded.
    model = load(res, client, fallback=args.fallback)
    if model.kind == "artifact":
        say(f"verified and loaded {model.description}: signature ok, parts sha256 ok, this host meets its needs")
    elif model.fallback_error is not None:
        say(f"artifact refused ({model.fallback_error.code}): {model.fallback_error.message}")
        say("running the portable graph instead (--fallback)")
    portable = model if model.kind == "portable" else load_portable(res, client, why=["reference for comparison"])
    try:
        inputs = synthesize(portable.program, args.seed)
        say(f"inputs (seed {args.seed}): {', '.join(inputs.shapes())}")
        verification = (model.manifest or {}).get("verification") or {}
        atol = args.atol if args.atol is not None else float(verification.get("atol") or DEFAULT_ATOL)
        rtol = args.rtol if args.rtol is not None else float(verification.get("rtol") or DEFAULT_RTOL)
        # no_grad, as the compile driver times on the build host, so the speedups compare.
        with torch.no_grad():
            try:
                ref_args, ref_kwargs = inputs.clone()
                expected = portable(*ref_args, **ref_kwargs)
                run_args, run_kwargs = inputs.clone()
                actual = model(*run_args, **run_kwargs)
            except KilnRuntimeError:
                raise
            except Exception as exc:
                raise LoadError(ErrorCode.RUN_FAILED, f"running the model failed: {type(exc).__name__}: {exc}") from exc
            max_abs, ok, problems = compare_outputs(actual, expected, atol, rtol)
            eager_ms, model_ms = _median_ms(portable, model, inputs, warmup=args.warmup, runs=args.runs)
    finally:
        model.close()
        if portable is not model:
            portable.close()

    speedup = eager_ms / model_ms if model_ms > 0 else 0.0
    out = _resolution_json(res)
    out.update(
        ran={"kind": model.kind, "artifactId": model.artifact_id, "targetId": model.target_id, "path": str(model.path)},
        fallbackError=model.fallback_error.to_json() if model.fallback_error else None,
        inputs=inputs.shapes(),
        seed=args.seed,
        maxAbsError=max_abs,
        atol=atol,
        rtol=rtol,
        withinTolerance=ok,
        problems=problems,
        eagerMs=eager_ms,
        modelMs=model_ms,
        speedup=speedup,
        runs=args.runs,
        threads=torch.get_num_threads(),
    )
    if args.json:
        _emit(args, out)
    else:
        name = f"artifact {model.target_id}" if model.kind == "artifact" else "portable graph"
        print(f"ran: {name} ({model.path})")
        print(
            f"max abs error vs the portable graph: {max_abs:.3g} (atol {atol:g}, rtol {rtol:g}): "
            + ("OK" if ok else "MISMATCH")
        )
        print(
            f"portable graph: {eager_ms:.3f} ms, {name}: {model_ms:.3f} ms "
            f"(median of {args.runs}, {torch.get_num_threads()} threads)"
        )
        print(f"speedup: {speedup:.2f}x")
    if not ok:
        raise OutputMismatchError(
            ErrorCode.OUTPUT_MISMATCH,
            f"the {model.description} differs from the portable graph beyond tolerance: " + "; ".join(problems),
            {"maxAbsError": max_abs, "atol": atol, "rtol": rtol},
        )
    return EXIT_OK


def synthesize(program: Any, seed: int) -> Any:
    from .inputs import synthesize_inputs

    return synthesize_inputs(program, seed)


def cmd_keys(args: argparse.Namespace) -> int:
    client = _client(args)
    store = client.trust
    published = store.published_keys(client.signing_keys())
    if args.trust:
        if store.pinned is not None:
            raise UsageError(
                ErrorCode.USAGE, "keys are pinned with KILN_SIGNING_PUBLIC_KEY; the trust store is not used"
            )
        if args.trust not in published:
            raise UsageError(
                ErrorCode.UNKNOWN_SIGNING_KEY, f"the API at {client.api_url} does not publish key {args.trust}"
            )
        store.trust(published[args.trust], f"accepted with kiln-device keys --trust from {client.api_url}")
        say(f"trusting signing key {args.trust}")
    trusted = store.pinned if store.pinned is not None else store.stored()
    out = {
        "trusted": sorted(trusted),
        "source": "pinned (KILN_SIGNING_PUBLIC_KEY)" if store.pinned is not None else str(store.directory),
        "published": sorted(published),
    }
    if args.json:
        _emit(args, out)
    else:
        print(f"trusted ({out['source']}): {', '.join(out['trusted']) or 'none yet (trust on first use)'}")
        print(f"published by {client.api_url}: {', '.join(out['published']) or 'none'}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help=f"Kiln API URL (env KILN_API_URL, default {DEFAULT_API_URL})")
    common.add_argument("--token", default=None, help="device token (env KILN_DEVICE_TOKEN)")
    common.add_argument("--cache-dir", default=None, help="cache folder (env KILN_CACHE_DIR, default ~/.cache/kiln)")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--no-progress", action="store_true", help="no download progress bars")
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")

    resolving = argparse.ArgumentParser(add_help=False)
    resolving.add_argument("model", help="model name or id, optionally name@channel")
    resolving.add_argument("--version", type=int, default=None, help="version number (default: channel or latest)")
    resolving.add_argument("--channel", default=None, help="channel name (same as MODEL@channel)")
    resolving.add_argument(
        "--fingerprint", default=None, metavar="FILE", help="send this fingerprint instead of this host's probe"
    )

    parser = argparse.ArgumentParser(
        prog="kiln-device", description="Kiln device runtime: resolve, download, verify and run compiled models."
    )
    parser.add_argument("--version", action="version", version=f"kiln-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fingerprint", help="print this host's fingerprint (JSON)")
    p.add_argument("--no-torch", action="store_true", help="do not import torch")
    p.add_argument("--no-hostname", action="store_true", help="leave the hostname out")
    p.set_defaults(func=cmd_fingerprint, json=True, verbose=False)

    p = sub.add_parser(
        "fetch", parents=[common, resolving], help="resolve, explain, download and verify; print the path"
    )
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "run",
        parents=[common, resolving],
        help="resolve, verify, load and run on synthesized inputs; compare with the portable graph and time both",
    )
    p.add_argument("--runs", type=int, default=20, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="seed for input sizes and values")
    p.add_argument("--atol", type=float, default=None, help="default: the manifest's verification tolerance")
    p.add_argument("--rtol", type=float, default=None)
    p.add_argument(
        "--fallback", action="store_true", help="run the portable graph when the artifact fails to verify or load"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("keys", parents=[common], help="show trusted and published signing keys; --trust KEYID")
    p.add_argument("--trust", metavar="KEYID", default=None, help="trust this published key (after checking it)")
    p.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="kiln-device: %(message)s",
        stream=sys.stderr,
    )
    if getattr(args, "cache_dir", None):
        args.cache_dir = Cache(args.cache_dir)
    try:
        return int(args.func(args))
    except KilnRuntimeError as exc:
        extra = f" [{exc.api_code}, HTTP {exc.status}]" if isinstance(exc, ApiError) else ""
        say(f"kiln-device: error {exc.code}{extra}: {exc.message}")
        if getattr(args, "json", False) and args.command != "fingerprint":
            print(json.dumps({"error": exc.to_json()}, indent=2))
        return exc.exit_code
    except KeyboardInterrupt:
        say("kiln-device: interrupted (partial downloads are kept and resumed next time)")
        return 130
