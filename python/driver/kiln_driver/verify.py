"""Verification and timing, in a fresh process.

The parent never loads the compiled `.so`: a crash while loading or running it must not take the driver
down, and a fresh process is what a device will do. The parent starts `python -m kiln_driver verify --request -`
(same interpreter, same environment, so the same sandbox) while the compile runs; the child imports torch and
waits; once the parts exist, the parent writes a request file and sends its path on the child's stdin.
The child assembles the package from the parts files exactly as a device does, loads it with
AOTI_RUNTIME_CHECK_INPUTS=1, compares it with the portable graph on every planned input set, times both,
and writes JSON lines to its stdout: `phase` events (forwarded), `step` markers (where it was if it
crashes), and finally one `result`.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Literal, TypedDict

from . import timing as timing_method
from .compare import compare_outputs, ieee_fp32, sync
from .errors import DriverError, ErrorCode, short_traceback
from .host_lock import DEFAULT_WAIT_S, host_lock
from .input_checks import accepted_dims, is_input_range_error, narrowed_dims, narrowed_range_error
from .inputs import InputPlan, call_args, input_shapes, materialize
from .package_parts import assemble_package
from .progress import PHASES, Events, log

AOTI_DIR = ["data", "aotinductor"]


class WeightsPartRef(TypedDict):
    entry: str
    path: str


class _VerifyRequestRequired(TypedDict):
    codePart: str
    weightsParts: list[WeightsPartRef]
    portableModel: str
    inputPlan: InputPlan
    atol: float
    rtol: float
    warmup: int
    runs: int
    workDir: str


class VerifyRequest(_VerifyRequestRequired, total=False):
    # What the artifact computes in; the reference is always the fp32 portable graph. Absent = fp32.
    precision: str
    # Bounds of the timing (absent: the defaults below): the whole measurement, and the wait for the host lock.
    maxSeconds: float
    lockWaitSeconds: float
    # False: compare only, no timing (a cross build verified under emulation: its speed says nothing of a device's).
    measureSpeed: bool


DEFAULT_TIMING_MAX_S = 60.0


class _VerificationRequired(TypedDict):
    passed: bool
    atol: float
    rtol: float
    maxAbsError: float
    maxRelError: float
    inputShapes: list[list[list[int]]]
    freshProcess: bool
    device: str


class Emulation(TypedDict):
    emulator: str  # "qemu-aarch64"
    cpu: str  # the CPU it emulated ("neoverse-n1")
    arch: str  # the machine the artifact ran as ("aarch64")
    torch: str  # the target architecture's torch that ran it and the portable graph


class VerificationResult(_VerificationRequired, total=False):
    referencePrecision: Literal["fp32"]
    tf32: bool  # CUDA only: whether TF32 was allowed (never)
    emulated: Emulation  # a cross build's: run under user-mode emulation, with the target architecture's torch


class _TimingResultRequired(TypedDict):
    eagerMs: float
    compiledMs: float
    speedup: float
    runs: int  # interleaved rounds measured (fewer than asked when `truncated`)
    threads: int
    inputShapes: list[list[int]]
    # The host timing lock: "exclusive" (no other build compiled or timed meanwhile), "contended" (the bounded
    # wait for it ran out and the measurement went on beside other builds), "none" (no lock on this host).
    lock: str
    lockWaitS: float
    truncated: bool  # the time budget (maxSeconds) ended the measurement before `runs` rounds


class TimingResult(_TimingResultRequired, total=False):
    # Method `interleaved-median-ci` (timing.py); manifests written before it have only the fields above.
    method: str
    speedupCi: list[float]
    confidence: float
    uncertain: bool
    noise: timing_method.TimingNoise
    perInput: list[timing_method.TimingPerInput]


# ------------------------------------------------------------------------------------------------- child


def aoti_model_name(package: Path) -> str:
    with zipfile.ZipFile(package) as z:
        names = {n.split("/")[3] for n in z.namelist() if n.count("/") >= 4 and n.split("/")[1:3] == AOTI_DIR}
    if len(names) != 1:
        raise DriverError(
            ErrorCode.LOAD_FAILED, f"expected one AOTInductor model in the package, found {sorted(names)}"
        )
    return names.pop()


def load_compiled(package: Path) -> Any:
    """What `torch._inductor.aoti_load_package` does, minus its CPU ISA comparison.

    That comparison only logs a warning, yet it compiles and dlopens a probe per x86 ISA in fresh Python
    processes (4-13 s here, and it needs a C++ compiler on the device). Kiln's manifest pins the ISA instead.
    `load_package` itself falls back to this same direct construction.
    """
    import torch

    try:
        from torch.export.pt2_archive._package import AOTICompiledModel

        loader_cls = torch._C._aoti.AOTIModelPackageLoader
    except (ImportError, AttributeError):
        return torch._inductor.aoti_load_package(str(package))
    return AOTICompiledModel(loader_cls(str(package), aoti_model_name(package), False, 1, -1))


def _clone(values: list[Any]) -> list[Any]:
    import torch

    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


class _Child:
    """The verifier process: assemble, load, compare on every input set, time."""

    def __init__(self, events: Events, request: VerifyRequest) -> None:
        self.events = events
        self.req = request
        self.plan = request["inputPlan"]
        self.device = self.plan["device"]
        self.ep: Any = None
        self.tf32 = False

    def step(self, name: str) -> None:
        log.info("verifier: %s (%.1f s)", name.replace("_", " "), self.events.elapsed())
        self.events.emit({"event": "step", "step": name})

    def call(self, fn: Any, flat: list[Any]) -> Any:
        args, kwargs = call_args(self.ep, flat)
        return fn(*args, **kwargs)

    def run(self) -> dict[str, Any]:
        from .compile import load_program, program_on

        work = Path(self.req["workDir"])
        work.mkdir(parents=True, exist_ok=True)
        os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
        # Before anything runs: the portable graph and the artifact's cuBLAS/cuDNN calls read these at run time.
        self.tf32 = ieee_fp32(self.device)

        self.step("assemble")
        package = assemble_package(
            Path(self.req["codePart"]),
            [(w["entry"], Path(w["path"])) for w in self.req["weightsParts"]],
            work / "assembled.pt2",
        )
        self.step("load_portable")
        self.ep = program_on(load_program(Path(self.req["portableModel"])), self.device)
        reference = self.ep.module()
        self.step("run_portable")
        sets = self.expected_outputs(reference)

        self.step("load_compiled")
        try:
            compiled = load_compiled(package)
        except Exception as exc:
            raise DriverError(
                ErrorCode.LOAD_FAILED,
                f"the compiled artifact does not load: {type(exc).__name__}: {exc}",
                {"stage": "load_compiled", "traceback": short_traceback(exc)},
            ) from exc
        try:
            self.step("run_compiled")
            verification = self.compare(compiled, sets, package)
            if not self.req.get("measureSpeed", True):
                return {"verification": verification, "timing": None}
            sizes = [shapes for _, _, shapes in sets[: timing_method.MAX_SIZES]]
            self.events.phase(
                "timing",
                f"timing on {len(sizes)} input size(s) {sizes}: warm-up until stable, at least {self.req['runs']} "
                "interleaved pairs each, under the host lock",
            )
            self.step("timing")
            timing = self.time(reference, compiled, sets)
        finally:
            # The loader extracted the package under $TMPDIR; freeing the model removes that folder.
            del compiled
            gc.collect()
        return {"verification": verification, "timing": timing}

    def expected_outputs(self, reference: Any) -> list[tuple[list[Any], Any, list[list[int]]]]:
        """(inputs, portable graph outputs, input shapes) per planned set the portable graph accepts."""
        import torch

        sets = []
        with torch.no_grad():
            for i, specs in enumerate(self.plan["sets"]):
                flat = materialize(specs, self.plan["seed"] + i, self.device)
                try:
                    expected = self.call(reference, _clone(flat))
                except Exception as exc:
                    if i == 0:  # the export-hint sizes must work: the user exported with them
                        # On CUDA this can be the program rather than the inputs: an export made on the CPU may
                        # hold views that only fit the CPU kernels' output strides (seen: nn.MultiheadAttention's
                        # fp32 attention output on an H100).
                        where = f"on {self.device}: {type(exc).__name__}: {exc}"
                        details = {"inputShapes": input_shapes(specs), "device": self.device}
                        raise DriverError(
                            ErrorCode.INVALID_MODEL,
                            f"the portable graph fails on synthesized inputs {where}",
                            {**details, "traceback": short_traceback(exc)},
                        ) from exc
                    log.warning("skipping input set %s (the portable graph rejects it): %s", input_shapes(specs), exc)
                    continue
                sets.append((flat, expected, input_shapes(specs)))
        return sets

    def compare(
        self, compiled: Any, sets: list[tuple[list[Any], Any, list[list[int]]]], package: Path
    ) -> VerificationResult:
        import torch

        atol, rtol = self.req["atol"], self.req["rtol"]
        max_abs = max_rel = 0.0
        problems: list[str] = []
        kinds: list[str] = []
        rejected: list[dict[str, Any]] = []
        with torch.no_grad():
            for flat, expected, shapes in sets:
                try:
                    actual = self.call(compiled, _clone(flat))
                except Exception as exc:
                    if is_input_range_error(str(exc)):
                        log.error("the artifact refuses inputs %s: %s", shapes, str(exc).strip())
                        rejected.append({"inputShapes": shapes, "error": str(exc).strip()})
                        continue
                    raise DriverError(
                        ErrorCode.LOAD_FAILED,
                        f"the compiled artifact fails to run: {type(exc).__name__}: {exc}",
                        {"stage": "run_compiled", "inputShapes": shapes, "traceback": short_traceback(exc)},
                    ) from exc
                sync(self.device)
                cmp = compare_outputs(expected, actual, atol, rtol)
                max_abs, max_rel = max(max_abs, cmp["maxAbsError"]), max(max_rel, cmp["maxRelError"])
                problems += [f"inputs {shapes}: {p}" for p in cmp["problems"]]
                kinds += cmp["kinds"]
        if rejected:
            raise narrowed_range_error(narrowed_dims(accepted_dims(package), self.plan), rejected)
        verification: VerificationResult = {
            "passed": not problems,
            "atol": atol,
            "rtol": rtol,
            "maxAbsError": max_abs,
            "maxRelError": max_rel,
            "inputShapes": [shapes for _, _, shapes in sets],
            "freshProcess": True,
            "device": self.device,
            "referencePrecision": "fp32",
        }
        if self.device.startswith("cuda"):
            verification["tf32"] = self.tf32
        precision = self.req.get("precision", "fp32")
        log.info(
            "verification (%s artifact vs fp32 portable graph, on %s): passed=%s maxAbsError=%.3g maxRelError=%.3g",
            precision,
            self.device,
            not problems,
            max_abs,
            max_rel,
        )
        if problems:
            for p in problems[:20]:
                log.error("mismatch: %s", p)
            raise DriverError(
                ErrorCode.NUMERIC_MISMATCH,
                mismatch_message(problems, kinds, precision, atol, rtol),
                {
                    **verification,
                    "precision": precision,
                    "mismatch": sorted(set(kinds), key=kinds.index),
                    "problems": problems[:50],
                },
            )
        return verification

    def time(self, reference: Any, compiled: Any, sets: list[tuple[list[Any], Any, list[list[int]]]]) -> TimingResult:
        import torch

        def caller(fn: Any, flat: list[Any]) -> Any:
            return lambda: self.call(fn, flat)

        sizes = [(caller(reference, flat), caller(compiled, flat), shapes) for flat, _, shapes in sets]
        max_s = float(self.req.get("maxSeconds", DEFAULT_TIMING_MAX_S))
        lock_wait_s = float(self.req.get("lockWaitSeconds", DEFAULT_WAIT_S))
        # Both bounded: the wait for the host's exclusive timing lock, and the measurement itself.
        with torch.no_grad(), host_lock(exclusive=True, wait_s=lock_wait_s) as lock:
            timing: TimingResult = timing_method.measure(  # type: ignore[assignment]
                sizes,
                device=self.device,
                warmup=self.req["warmup"],
                runs=self.req["runs"],
                threads=torch.get_num_threads(),
                lock_wait_ms=lock["waitedS"] * 1000.0,
                max_seconds=max_s,
            )
        timing["lock"] = lock["lock"]
        timing["lockWaitS"] = lock["waitedS"]
        if lock["lock"] == "contended":
            # Measured beside other builds' compiles: never proof of anything.
            timing["uncertain"] = True
            timing["noise"]["reasons"].append(
                f"the host's timing lock was still held by other builds after {lock['waitedS']:.0f} s"
            )
        log.info(
            "timing: eager %.3f ms, compiled %.3f ms: %.2fx (95%% CI %s, %d pairs, %d threads, host lock %s "
            "after %.1f s)%s",
            timing["eagerMs"],
            timing["compiledMs"],
            timing["speedup"],
            timing.get("speedupCi"),
            timing["runs"],
            timing["threads"],
            lock["lock"],
            lock["waitedS"],
            f"; uncertain: {'; '.join(timing['noise']['reasons'])}" if timing.get("uncertain") else "",
        )
        for entry in timing.get("perInput", [])[1:]:
            log.info(
                "timing on inputs %s: %.2fx %s",
                entry["inputShapes"],
                entry["speedup"]["median"],
                entry["speedup"]["ci"],
            )
        return timing


def mismatch_message(problems: list[str], kinds: list[str], precision: str, atol: float, rtol: float) -> str:
    """Says what differs (`kinds[i]` is what `problems[i]` is, see compare.Comparison). Only differing numbers
    are "beyond the tolerance"; outputs of another number, structure, type, dtype or shape (an int in the portable
    graph, a 0-d tensor in the artifact) are named as such, with the first such problem, whatever the numbers."""
    lowered = f" (computing in {precision})" if precision != "fp32" else ""
    interface = sorted({k for k in kinds if k != "value"}, key=kinds.index)
    if not interface:
        return f"the compiled artifact{lowered} differs from the portable graph beyond atol={atol} rtol={rtol}"
    first = next(p for p, k in zip(problems, kinds, strict=True) if k != "value")
    more = f" ({len(problems) - 1} more in details.problems)" if len(problems) > 1 else ""
    words = {"count": "number", "structure": "structure", "type": "type", "dtype": "dtype", "shape": "shape"}
    differ = " and ".join(words[k] for k in interface)
    return (
        f"the compiled artifact's outputs differ from the portable graph's in {differ}"
        f" (an artifact must return what the portable graph returns): {first}{more}"
    )


# What the child would import first thing: done while it waits for its request, so that a verifier started
# before the compile (Verifier.start) spends the compile's time, not the build's, on it.
def _warm_up() -> None:
    import torch._inductor.package  # noqa: F401 (imports torch itself)
    from torch.export.pt2_archive._package import load_pt2  # noqa: F401


def run_child(request_path: Path, events: Events) -> int:
    """Entry point of `python -m kiln_driver verify`. Exit 0 with a result line, whatever the outcome.

    `--request -`: import what verifying needs, then read the request file's path from stdin (a verifier started
    before its artifact exists). An empty stdin means the build ended without one: exit quietly.
    """
    if str(request_path) == "-":
        _warm_up()
        line = sys.stdin.readline().strip()
        if not line:
            return 0
        request_path = Path(line)
    request: VerifyRequest = json.loads(request_path.read_text(encoding="utf-8"))
    try:
        result = _Child(events, request).run()
        events.emit({"event": "result", "ok": True, **result})
    except DriverError as known:
        events.emit({"event": "result", "ok": False, "error": known.to_json()})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        log.exception("verifier crashed")
        crash = DriverError(
            ErrorCode.DRIVER_CRASHED,
            f"verifier crashed: {type(exc).__name__}: {exc}",
            {"traceback": short_traceback(exc)},
        )
        events.emit({"event": "result", "ok": False, "error": crash.to_json()})
    return 0


# ------------------------------------------------------------------------------------------------ parent


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
    # Make `-m kiln_driver` importable in the child even when the parent runs from a source checkout.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


class Verifier:
    """The verifier's fresh process, which loads nothing of the artifact before its request comes.

    `command`/`env`: how to start it when not with this interpreter (a cross build's verifier runs the target
    architecture's python under emulation, cross.emulator_command); the child's arguments are appended.

    `start()` before the compile: the child imports torch while the compiler runs, off the build's critical path
    (bench/verifier-start.py measures it), and waits on stdin. `run()` writes the request
    and hands the child its path (starting the child then, if `start()` was not called), then reads its events.
    `close()` kills a child that is still there: a build that fails or is cancelled before verifying leaves none.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._command: list[str] = [sys.executable]
        self._env: dict[str, str] | None = None

    def run_with(self, command: list[str], env: dict[str, str]) -> None:
        """Start the child with `command` (an interpreter and its options) and `env` instead; before start()."""
        if self._proc is not None:
            raise RuntimeError("the verifier has started already")
        self._command, self._env = list(command), dict(env)

    def start(self) -> None:
        if self._proc is not None:
            return
        cmd = [*self._command, "-m", "kiln_driver", "verify", "--request", "-"]
        log.info("verifier: %s (waiting for its request)", " ".join(cmd))
        # The environment as it is now: prepare_environment has run (TMPDIR, the inductor cache).
        env = _child_env() if self._env is None else {**self._env, "AOTI_RUNTIME_CHECK_INPUTS": "1"}
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env, text=True
        )

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(
        self, request: VerifyRequest, request_path: Path, events: Events
    ) -> tuple[VerificationResult, TimingResult | None]:
        request_path.write_text(json.dumps(request), encoding="utf-8")
        self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"{request_path}\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died while waiting: reported below like any other death
        return _read_result(proc, events)


def verify_in_fresh_process(
    request: VerifyRequest, request_path: Path, events: Events
) -> tuple[VerificationResult, TimingResult | None]:
    """A verifier started now, for its one request."""
    with Verifier() as verifier:
        return verifier.run(request, request_path, events)


def _read_result(proc: subprocess.Popen[str], events: Events) -> tuple[VerificationResult, TimingResult | None]:
    assert proc.stdout is not None
    result: dict[str, Any] | None = None
    last_step = "start"
    try:
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                log.info("verifier: %s", line.rstrip())
                continue
            kind = msg.get("event") if isinstance(msg, dict) else None
            if kind == "phase" and msg.get("phase") in PHASES:
                # Through this process's Events: it ends the phase before and stamps the job's traceparent.
                events.phase(msg["phase"], str(msg.get("message", "")), log_it=False)
            elif kind == "step":
                last_step = str(msg.get("step"))
            elif kind == "result":
                result = msg
        returncode = proc.wait()
    finally:
        if proc.poll() is None:  # we are being torn down (cancelled): do not leave the child behind
            proc.kill()
            proc.wait()

    if result is None:
        details: dict[str, Any] = {"stage": last_step, "exitCode": returncode}
        if returncode < 0:
            try:
                details["signal"] = signal.Signals(-returncode).name
            except ValueError:
                details["signal"] = f"signal {-returncode}"
            if -returncode == signal.SIGKILL:  # the OOM killer or the worker: not the artifact's fault
                raise DriverError(ErrorCode.DRIVER_CRASHED, f"the verifier was killed during {last_step}", details)
        raise DriverError(
            ErrorCode.LOAD_FAILED,
            f"the verifier process died during {last_step} ({details.get('signal', f'exit {returncode}')})",
            details,
        )
    if not result.get("ok"):
        err = result.get("error") or {}
        raise DriverError(
            str(err.get("code", ErrorCode.DRIVER_CRASHED)), str(err.get("message", "")), err.get("details") or {}
        )
    return result["verification"], result["timing"]  # timing None: the request said measureSpeed=False
