"""`kiln-device` (also `python -m kiln_runtime`): fingerprint, fetch, run, keys, telemetry. README.md: exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .cache import Cache
from .client import DEFAULT_API_URL, KilnClient, check_artifact_binding
from .device_identity import device_id
from .download import Progress
from .errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    ApiError,
    ErrorCode,
    KilnRuntimeError,
    LoadError,
    UsageError,
)
from .fingerprint import validate_fingerprint
from .http import RetryPolicy
from .needs import check_needs, js_number
from .probe import probe_fingerprint
from .resolution import Resolution
from .run import RunOptions, run_resolution
from .signing import parse_public_key
from .telemetry import Telemetry, telemetry_enabled
from .x86_levels import device_x86_level

log = logging.getLogger("kiln_runtime")


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
        trust_on_first_use=True if args.trust_on_first_use else None,
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


def _resolve(args: argparse.Namespace, client: KilnClient, fp: dict[str, Any], me: str) -> Resolution:
    return client.resolve(
        args.model,
        fingerprint=fp,
        version=args.version,
        channel=args.channel,
        device_id=me,
        unmeasured_artifacts=args.unmeasured_artifacts,
    )


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
    if res.rollout is not None:
        say(f"rollout {res.rollout.id} ({res.rollout.status}): {res.rollout.reason}")
    if res.device_class:
        say(f"device class: {res.device_class}")
    art = res.artifact
    if art is not None:
        where = "on devices of this class" if art.basis == "device" else "on the build host"
        say(
            f"chosen: {art.target_id} (artifact {art.id}), {js_number(art.speedup)}x the portable graph's speed {where}"
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
            "basis": art.basis,
            "reasons": list(art.reasons),
        }
        if art is not None
        else {"kind": "portable", "reasons": [res.fallback.reason]},
        "ranked": list(res.ranked),
        "rejected": list(res.rejected),
        "deviceClass": res.device_class,
        "rollout": {
            "id": res.rollout.id,
            "status": res.rollout.status,
            "stageIndex": res.rollout.stage_index,
            "percent": res.rollout.percent,
            "arm": res.rollout.arm,
            "reason": res.rollout.reason,
        }
        if res.rollout is not None
        else None,
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
    res = _resolve(args, client, fp, device_id(client.cache))
    explain(res, fp, bool(args.fingerprint))
    out = _resolution_json(res)
    if res.artifact is None:
        path = client.fetch_portable(res)
        say(
            f"verified: portable graph manifest signature (key {res.fallback.signing_key_id}), bound to "
            f"{res.model_name} v{res.version_number}; sha256 {res.fallback.sha256} ({res.fallback.size} bytes); "
            "guards and shape expressions within Kiln's grammars"
        )
        out.update(path=str(path), verified={"sha256": res.fallback.sha256})
    else:
        fetched = client.fetch_artifact(res.artifact)
        check_artifact_binding(fetched.manifest.data, client.fetch_portable_manifest(res))
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
                    {"role": p.role, "sha256": p.sha256, "size": p.size, "path": str(path), **t.as_json()}
                    for (p, path), t in zip(fetched.parts, fetched.transfers, strict=True)
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


def cmd_run(args: argparse.Namespace) -> int:
    from .loader import require_torch

    require_torch()
    client = _client(args)
    fp = _fingerprint(args)
    me = device_id(client.cache)
    res = _resolve(args, client, fp, me)
    explain(res, fp, bool(args.fingerprint))
    # Reports go out with a short retry budget: a slow or absent API must not hold the run up.
    sender = KilnClient(client.api_url, client.token, cache=client.cache, retry=RetryPolicy(attempts=2, timeout_s=5))
    telemetry = Telemetry(sender, enabled=telemetry_enabled(args.no_telemetry))
    options = RunOptions(
        seed=args.seed,
        runs=args.runs,
        warmup=args.warmup,
        atol=args.atol,
        rtol=args.rtol,
        fallback=args.fallback,
        sizes=args.sizes,
    )
    try:
        ran = run_resolution(res, client, fingerprint=fp, telemetry=telemetry, options=options)
    finally:
        flushed = telemetry.flush()
        if flushed.error:
            log.info("telemetry: %d reports kept for later (%s)", flushed.kept, flushed.error)
    if ran["ran"]["kind"] == "artifact":
        say(f"verified and loaded {ran['description']}: signature ok, parts sha256 ok, this host meets its needs")
    elif ran["fallbackError"] is not None:
        say(f"artifact refused ({ran['fallbackError']['code']}): {ran['fallbackError']['message']}")
        say("ran the portable graph instead (--fallback)")
    mismatch = ran.pop("mismatch")
    ran.pop("description")
    out = _resolution_json(res)
    out.update(ran)
    out.update(
        deviceId=me,
        telemetry={
            "enabled": telemetry.enabled,
            "reportId": ran["reportId"],
            "sent": flushed.sent,
            "kept": flushed.kept,
            "error": flushed.error,
        },
    )
    if args.json:
        _emit(args, out)
    else:
        kind = ran["ran"]["kind"]
        name = f"artifact {ran['ran']['targetId']}" if kind == "artifact" else "portable graph"
        print(f"ran: {name} ({ran['ran']['path']})")
        print(
            f"max abs error vs the portable graph: {ran['maxAbsError']:.3g} (atol {ran['atol']:g}, "
            f"rtol {ran['rtol']:g}): " + ("OK" if ran["withinTolerance"] else "MISMATCH")
        )
        for entry in ran["latency"]:
            shapes = " ".join(str(s) for s in entry["inputShapes"])
            timed = f", {name}: {entry['artifactMs']:.3f} ms" if "artifactMs" in entry else ""
            print(f"inputs {shapes}: portable graph {entry['portableMs']:.3f} ms{timed} (median of {ran['runs']})")
        print(f"speedup: {ran['speedup']:.2f}x ({ran['threads']} threads)")
        if telemetry.enabled:
            print(f"reported to Kiln: {flushed.sent} report(s) sent, {flushed.kept} kept for later")
    if mismatch is not None:
        raise mismatch
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    client = _client(args)
    store = client.trust
    if args.pin:
        if store.pinned is not None:
            raise UsageError(
                ErrorCode.USAGE, "keys are pinned with KILN_SIGNING_PUBLIC_KEY; the trust store is not used"
            )
        text = Path(args.pin[1:]).read_text() if args.pin.startswith("@") else args.pin
        try:
            raw = parse_public_key(text)
        except ValueError as exc:
            raise UsageError(ErrorCode.USAGE, f"--pin: not an ed25519 public key ({exc})") from exc
        kid = store.trust(raw, "enrolled with kiln-device keys --pin")
        say(f"pinned signing key {kid}")
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
        none = "none yet (trust on first use)" if store.trust_on_first_use else "none: pin one with --pin"
        print(f"trusted ({out['source']}): {', '.join(out['trusted']) or none}")
        print(f"published by {client.api_url}: {', '.join(out['published']) or 'none'}")
    return EXIT_OK


def cmd_telemetry(args: argparse.Namespace) -> int:
    client = _client(args)
    sender = KilnClient(client.api_url, client.token, cache=client.cache, retry=RetryPolicy(attempts=2, timeout_s=5))
    telemetry = Telemetry(sender, enabled=telemetry_enabled())
    out: dict[str, Any] = {
        "enabled": telemetry.enabled,
        "deviceId": device_id(client.cache),
        "pending": len(telemetry.pending()),
    }
    if args.flush:
        r = telemetry.flush()
        out.update(sent=r.sent, accepted=r.accepted, duplicates=r.duplicates, rejected=r.rejected, error=r.error)
        out["pending"] = len(telemetry.pending())
    if args.json:
        _emit(args, out)
    else:
        state = "on" if telemetry.enabled else "off (KILN_TELEMETRY)"
        print(f"telemetry {state}; device id {out['deviceId']}; {out['pending']} report(s) queued")
        if args.flush:
            print(f"sent {out['sent']} ({out['accepted']} new, {out['duplicates']} already there)")
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
    common.add_argument(
        "--trust-on-first-use",
        action="store_true",
        help="with no key pinned or enrolled, trust the keys the API publishes (env KILN_TRUST_ON_FIRST_USE=1)",
    )

    resolving = argparse.ArgumentParser(add_help=False)
    resolving.add_argument("model", help="model name or id, optionally name@channel")
    resolving.add_argument("--version", type=int, default=None, help="version number (default: channel or latest)")
    resolving.add_argument("--channel", default=None, help="channel name (same as MODEL@channel)")
    resolving.add_argument(
        "--fingerprint", default=None, metavar="FILE", help="send this fingerprint instead of this host's probe"
    )
    resolving.add_argument(
        "--unmeasured-artifacts",
        choices=["serve", "evidence-only"],
        default=None,
        help="an artifact whose speed was never measured (a cross build verified under emulation, e.g. linux-aarch64):"
        " serve it (the API's default) or wait until devices of this class have timed it (evidence-only)",
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
    p.add_argument("--sizes", type=int, default=2, help="input sets of different sizes to run and time (default 2)")
    p.add_argument(
        "--no-telemetry",
        action="store_true",
        help="report nothing to Kiln about this run (env KILN_TELEMETRY=0 does the same)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "keys", parents=[common], help="show trusted and published signing keys; enroll one with --pin or --trust"
    )
    p.add_argument(
        "--pin", metavar="KEY", default=None, help="enroll this public key (base64 or PEM, or @FILE): the default trust"
    )
    p.add_argument(
        "--trust", metavar="KEYID", default=None, help="enroll the published key with this id (handed over out of band)"
    )
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("telemetry", parents=[common], help="show queued run reports; --flush sends them")
    p.add_argument("--flush", action="store_true", help="send the queued reports now")
    p.set_defaults(func=cmd_telemetry)
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
