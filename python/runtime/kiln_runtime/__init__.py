"""Kiln's device runtime: fingerprint this host, ask the resolver, download, verify and load the artifact.

from kiln_runtime import KilnClient, load, probe_fingerprint

client = KilnClient("http://kiln:3000", token)          # or KILN_API_URL / KILN_DEVICE_TOKEN
resolution = client.resolve("resnet-edge@prod", fingerprint=probe_fingerprint())
with load(resolution, client) as model:                   # verified before anything is loaded
    y = model(x)

Compiling from a pipeline (API key, not a device token):

from kiln_runtime import compile_remote

result = compile_remote(exported_program, model="resnet-edge", targets=["linux-x86_64-v3"])
"""

__version__ = "0.1.0"

from .cache import Cache
from .client import FetchedArtifact, KilnClient, VerifiedManifest, VerifiedPortableManifest
from .device_identity import device_id
from .errors import (
    ApiError,
    ErrorCode,
    IncompatibleArtifactError,
    KilnRuntimeError,
    LoadError,
    NetworkError,
    VerificationError,
)
from .loader import LoadedModel, load, verify_artifact
from .needs import NeedsCheck, check_needs
from .probe import probe_fingerprint
from .remote_compile import CompiledArtifact, CompileResult, StorageError, TargetResult, compile_remote
from .resolution import PortableFallback, Resolution, ResolvedArtifact, ResolvedPart, RolloutAssignment
from .run import RunOptions, run_resolution
from .telemetry import Telemetry, telemetry_enabled

__all__ = [
    "ApiError",
    "Cache",
    "CompileResult",
    "CompiledArtifact",
    "ErrorCode",
    "FetchedArtifact",
    "IncompatibleArtifactError",
    "KilnClient",
    "KilnRuntimeError",
    "LoadError",
    "LoadedModel",
    "NeedsCheck",
    "NetworkError",
    "PortableFallback",
    "Resolution",
    "ResolvedArtifact",
    "ResolvedPart",
    "RolloutAssignment",
    "RunOptions",
    "StorageError",
    "TargetResult",
    "Telemetry",
    "VerificationError",
    "VerifiedManifest",
    "VerifiedPortableManifest",
    "__version__",
    "check_needs",
    "compile_remote",
    "device_id",
    "load",
    "probe_fingerprint",
    "run_resolution",
    "telemetry_enabled",
    "verify_artifact",
]
