"""Load what the resolver chose: a verified AOTInductor artifact, or the portable graph.

Order of checks for an artifact (each failure raises before anything is loaded):
  1. manifest bytes: sha256 as resolved, ed25519 signature by a trusted key, well-formed part list, bound to the
     resolved version (its model content hash, and tenant where named, as the signed portable manifest says);
  2. the manifest's `requires` against THIS host's probe (needs.py), whatever fingerprint was sent;
  3. every part: size and sha256 as listed in the signed manifest (cached parts are re-hashed);
  4. the package assembled from those parts (re-checked against its recorded sha256 when reused);
  5. the machine its compiled code is for, read from the code's own ELF/PE headers (machine_code.py);
only then `AOTIModelPackageLoader` with AOTI_RUNTIME_CHECK_INPUTS=1. The portable graph is checked like an
artifact: its signed manifest (bound to model and version), the file's sha256 and size as signed, every guard and
shape expression in it against Kiln's grammars (program_checks.py); then loaded from a copy without pickled
sample inputs.
"""

from __future__ import annotations

import gc
import logging
import os
import tempfile
import weakref
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import FetchedArtifact, KilnClient, check_artifact_binding
from .errors import (
    ErrorCode,
    IncompatibleArtifactError,
    KilnRuntimeError,
    LoadError,
    NetworkError,
    VerificationError,
)
from .machine_code import check_code_machine
from .needs import NeedsCheck, check_needs
from .portable import load_exported_program
from .probe import probe_fingerprint
from .resolution import Resolution

log = logging.getLogger("kiln_runtime")


@dataclass(eq=False)
class LoadedModel:
    """A loaded model: call it like the original module. `close()` (or `with`) frees it and its temp folder."""

    kind: str  # "artifact" | "portable"
    resolution: Resolution
    path: Path  # the assembled package, or the loadable portable copy
    why: list[str]
    artifact_id: str | None = None
    target_id: str | None = None
    manifest: dict[str, Any] | None = None
    needs: NeedsCheck | None = None
    program: Any = None  # the ExportedProgram, for a portable model
    fallback_error: KilnRuntimeError | None = None  # set when the artifact failed and the portable graph stands in
    _holder: list[Any] = field(default_factory=list, repr=False)
    # Loads the portable graph on first need: for calls with input sizes the artifact does not accept.
    _portable_loader: Callable[[], LoadedModel] | None = field(default=None, repr=False)
    _portable: LoadedModel | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Dropping the loader removes the folder it extracted to; also at interpreter exit if never closed.
        self._finalizer = weakref.finalize(self, self._holder.clear)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._holder:
            raise LoadError(ErrorCode.RUN_FAILED, "the model was closed")
        if self._portable_loader is not None and not self.accepts(args):
            if self._portable is None:
                log.info("input sizes outside the artifact's accepted range: running the portable graph")
                self._portable = self._portable_loader()
            return self._portable(*args, **kwargs)
        return self._holder[0](*args, **kwargs)

    def accepts(self, args: tuple[Any, ...]) -> bool:
        """Whether the artifact accepts these inputs' sizes. Inductor may specialise dynamic dims while
        compiling, so an artifact can accept fewer sizes than the program; the manifest's `inputRanges` says
        which (indices are the program's user inputs, i.e. the positional arguments of a plain forward)."""
        ranges = (self.manifest or {}).get("inputRanges") or {}
        for n in ranges.get("dims", []):
            i, d = n["input"], n["dim"]
            shape = getattr(args[i], "shape", None) if i < len(args) else None
            if shape is None or d >= len(shape):
                continue
            lo, hi = n["accepted"]
            if (lo is not None and shape[d] < lo) or (hi is not None and shape[d] > hi):
                return False
        return True

    @property
    def description(self) -> str:
        return f"artifact {self.artifact_id} ({self.target_id})" if self.kind == "artifact" else "portable graph"

    def close(self) -> None:
        self._holder.clear()
        if self._portable is not None:
            self._portable.close()
        gc.collect()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise LoadError(
            ErrorCode.TORCH_MISSING,
            "torch is not installed: install the torch build your artifacts were compiled with "
            "(e.g. torch==2.13.0 from the CPU wheel index)",
        ) from exc
    return torch


def ensure_tmpdir(cache_root: Path) -> Path:
    """AOTInductor extracts packages under $TMPDIR and dlopens from there: it must be writable and not noexec."""
    current = Path(tempfile.gettempdir())
    try:
        st = os.statvfs(current)
        usable = os.access(current, os.W_OK | os.X_OK) and not (st.f_flag & getattr(os, "ST_NOEXEC", 0))
    except OSError:
        usable = False
    if usable:
        return current
    fallback = cache_root / "tmp"
    fallback.mkdir(parents=True, exist_ok=True)
    log.warning("TMPDIR %s is not writable or is mounted noexec; using %s", current, fallback)
    os.environ["TMPDIR"] = str(fallback)
    tempfile.tempdir = None
    return fallback


def aoti_model_name(package: Path) -> str:
    with zipfile.ZipFile(package) as z:
        names = {
            n.split("/")[3] for n in z.namelist() if n.count("/") >= 4 and n.split("/")[1:3] == ["data", "aotinductor"]
        }
    if len(names) != 1:
        raise LoadError(ErrorCode.LOAD_FAILED, f"expected one AOTInductor model in the package, found {sorted(names)}")
    return names.pop()


def load_aoti_package(package: Path, device_index: int = -1) -> Any:
    """torch's AOTIModelPackageLoader, as `aoti_load_package` builds it, minus that function's CPU ISA probe
    (it compiles test programs with a C++ compiler a device may not have, and only logs a warning); the
    needs check against the signed manifest does that job here."""
    torch = require_torch()
    try:
        from torch.export.pt2_archive._package import AOTICompiledModel

        loader_cls = torch._C._aoti.AOTIModelPackageLoader
    except (ImportError, AttributeError):
        return torch._inductor.aoti_load_package(str(package), device_index=device_index)
    return AOTICompiledModel(loader_cls(str(package), aoti_model_name(package), False, 1, device_index))


def load(
    resolution: Resolution,
    client: KilnClient | None = None,
    *,
    host_fingerprint: dict[str, Any] | None = None,
    fallback: bool = False,
    device_index: int = -1,
) -> LoadedModel:
    """Verify and load the resolver's choice. With `fallback=True`, an artifact that fails to download,
    verify, match this host or load is replaced by the portable graph (the error is kept on the result)."""
    client = client or KilnClient()
    if resolution.artifact is None:
        return load_portable(resolution, client, why=[resolution.fallback.reason])
    try:
        return load_artifact(resolution, client, host_fingerprint=host_fingerprint, device_index=device_index)
    except (NetworkError, VerificationError, IncompatibleArtifactError, LoadError) as exc:
        if not fallback or exc.code == ErrorCode.TORCH_MISSING:
            raise
        log.warning("artifact %s not used (%s); running the portable graph instead", resolution.artifact.id, exc)
        model = load_portable(resolution, client, why=[f"fallback: {exc.message}", resolution.fallback.reason])
        model.fallback_error = exc
        return model


def verify_artifact(
    resolution: Resolution, client: KilnClient, *, host_fingerprint: dict[str, Any] | None = None
) -> tuple[FetchedArtifact, NeedsCheck]:
    """Steps 1-4: everything short of loading. Raises on the first failed check."""
    artifact = resolution.artifact
    if artifact is None:
        raise ValueError("the resolution has no artifact")
    manifest = client.fetch_manifest(artifact)
    # Bound to the version resolved: the artifact compiles its model content (portable manifest, signed too).
    check_artifact_binding(manifest.data, client.fetch_portable_manifest(resolution))
    host = host_fingerprint if host_fingerprint is not None else probe_fingerprint(hostname=False)
    needs = check_needs(host, manifest.data)
    if not needs.compatible:
        raise IncompatibleArtifactError(
            f"artifact {artifact.id} ({artifact.target_id}) needs what this host lacks: "
            + "; ".join(needs.failed)
            + ". Nothing was loaded.",
            needs.failed,
        )
    return client.fetch_artifact(artifact, manifest), needs


def load_artifact(
    resolution: Resolution,
    client: KilnClient,
    *,
    host_fingerprint: dict[str, Any] | None = None,
    device_index: int = -1,
) -> LoadedModel:
    require_torch()
    fetched, needs = verify_artifact(resolution, client, host_fingerprint=host_fingerprint)
    ensure_tmpdir(client.cache.root)
    # Out-of-range input shapes then raise instead of running silently (read once, at the first call).
    os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
    # The code's own headers too, whatever the manifest said: another machine's code fails in dlopen with a
    # misleading "cannot open shared object file".
    check_code_machine(fetched.package)
    try:
        compiled = load_aoti_package(fetched.package, device_index)
    except KilnRuntimeError:
        raise
    except Exception as exc:
        raise LoadError(
            ErrorCode.LOAD_FAILED, f"the verified artifact does not load: {type(exc).__name__}: {exc}"
        ) from exc
    artifact = fetched.artifact
    model = LoadedModel(
        kind="artifact",
        resolution=resolution,
        path=fetched.package,
        why=list(artifact.reasons),
        artifact_id=artifact.id,
        target_id=artifact.target_id,
        manifest=fetched.manifest.data,
        needs=needs,
    )
    model._holder.append(compiled)
    if (model.manifest or {}).get("inputRanges", {}).get("narrowed"):
        model._portable_loader = lambda: load_portable(
            resolution, client, why=["input sizes outside the artifact's accepted range"]
        )
    return model


def load_portable(resolution: Resolution, client: KilnClient, *, why: list[str]) -> LoadedModel:
    require_torch()
    path = client.fetch_portable(resolution)
    program = load_exported_program(path)
    model = LoadedModel(kind="portable", resolution=resolution, path=path, why=why, program=program)
    model._holder.append(program.module())
    return model
