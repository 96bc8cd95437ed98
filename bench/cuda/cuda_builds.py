"""The GPU run: real sm90 builds of the fixture models through the compile driver, in the worker's sandbox.

Runs ON the GPU machine, as root, from the repository root (bench/cuda/README.md):

    python bench/cuda/cuda_builds.py --plan bench/out/cuda-plan/plan.json --out OUT_DIR [--lanes 2] [--deadline 520]

1. records the machine: nvidia-smi (the worker's probe query), /proc/cpuinfo, driver, CUDA, torch and its inductor
   options, the sandbox tools;
2. exports the fixture models with this machine's torch (test/fixtures/make_models.py) and hashes their content
   as libs/pt2 does (kiln.pt2.content.v1);
3. writes each job folder as the worker's runCompileDriver does (job.json with the recipe, hashes, host and the
   sandbox that applies; model.pt2; tmp/cache/home/out owned by nobody);
4. checks that CUDA works inside the sandbox (the exact command line from make-plan.ts), falling back step by step
   and saying so;
5. runs `python -m kiln_driver build` for every job in that sandbox (`--lanes` at a time: compiles are CPU work);
6. then, with no build running, loads every assembled artifact in a FRESH process per model (the driver's loader,
   and the device runtime's when python/runtime has one), checks it against the fp32 portable graph and times
   eager vs compiled (synchronized) on the export-size inputs and on the largest accepted inputs;
7. leaves everything under OUT_DIR: machine.txt, fixtures/, jobs/<name>/{job.json,manifest.json|error.json,
   build.log,events.jsonl}, bench.json, summary.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NOBODY = (65534, 65534)
START = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - START


def sh(cmd: str, timeout: float = 60) -> str:
    try:
        p = subprocess.run(
            ["bash", "-c", cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return (p.stdout + p.stderr).strip()
    except subprocess.TimeoutExpired:
        return f"(timed out after {timeout} s)"


# ------------------------------------------------------------------------------------------- content hash


def content_hash(pt2: Path) -> str:
    """libs/pt2 combineContentHash: program JSON, weights/constants configs and the payloads they name."""
    with zipfile.ZipFile(pt2) as z:
        names = z.namelist()
        root = names[0].split("/", 1)[0]
        rel = {n.split("/", 1)[1]: n for n in names if "/" in n}
        model = next(
            r[len("models/") : -len(".json")]
            for r in rel
            if r.startswith("models/") and r.endswith(".json")
        )
        wanted = [
            f"models/{model}.json",
            f"data/weights/{model}_weights_config.json",
            f"data/constants/{model}_constants_config.json",
        ]
        for cfg, folder in (
            (wanted[1], "data/weights/"),
            (wanted[2], "data/constants/"),
        ):
            config = json.loads(z.read(f"{root}/{cfg}"))
            for entry in (config.get("config") or {}).values():
                wanted.append(folder + entry["path_name"])
        h = hashlib.sha256()
        h.update(b"kiln.pt2.content.v1\x00")
        for path in sorted(set(wanted), key=lambda p: p.encode()):
            data = z.read(rel[path])
            h.update(struct.pack(">Q", len(path.encode())) + path.encode())
            h.update(struct.pack(">Q", len(data)) + hashlib.sha256(data).digest())
    return h.hexdigest()


def cache_key(tenant: str, model_hash: str, target: str, recipe_hash: str) -> str:
    """libs/targets cacheKey: sha256 of the RFC 8785 JSON of {v, tenant, model, target, recipe} (all strings/ints)."""
    doc = {
        "model": model_hash,
        "recipe": recipe_hash,
        "target": target,
        "tenant": tenant,
        "v": 1,
    }
    return hashlib.sha256(
        json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    ).hexdigest()


# ---------------------------------------------------------------------------------------------- machine


def record_machine(out: Path, python: str) -> dict[str, Any]:
    fx = out / "fixtures"
    fx.mkdir(parents=True, exist_ok=True)
    smi = sh(
        "nvidia-smi --query-gpu=name,compute_cap,driver_version,index --format=csv,noheader"
    )
    (fx / "nvidia-smi-h100-index.csv").write_text(smi + "\n")
    cpuinfo = Path("/proc/cpuinfo").read_text()
    (fx / "cpuinfo-h100-host.txt").write_text(cpuinfo)
    flags = next(
        (line for line in cpuinfo.splitlines() if line.startswith("flags")), ""
    )
    (fx / "cpuinfo-h100-host-flags.txt").write_text(flags + "\n")
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    probe = (
        "import json, torch, torch._inductor.config as c; keys = c.get_config_copy();"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda,"
        "'available': torch.cuda.is_available(),"
        "'count': torch.cuda.device_count(), 'name': torch.cuda.get_device_name(0),"
        "'capability': list(torch.cuda.get_device_capability(0)),"
        "'options': {k: (k in keys) for k in ['freezing', 'aot_inductor.package_constants_in_so',"
        "'aot_inductor.package_constants_on_disk_format', 'cpp.march', 'cpp.cxx', 'cpp.dynamic_threads']},"
        "'allow_tf32': [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]}))"
    )
    text = "\n".join(
        f"$ {cmd}\n{sh(cmd)}\n"
        for cmd in [
            "nvidia-smi",
            "nvidia-smi --query-gpu=name,compute_cap,driver_version,index --format=csv,noheader",
            "cat /proc/driver/nvidia/version",
            "uname -a; cat /etc/os-release | head -3; nproc; free -g | head -2",
            "echo CXX=$CXX CUDA_HOME=$CUDA_HOME LD_LIBRARY_PATH=$LD_LIBRARY_PATH; echo PATH=$PATH",
            "g++ --version | head -1; $CXX --version 2>&1 | head -1; which nvcc; nvcc --version | tail -2",
            "ls -ld /usr/local/cuda /usr/local/cuda/include 2>&1; ls -l /dev/nvidia* 2>&1",
            "ldconfig -p | grep -E 'libcuda\\.so|libnvidia-ml' ; ls /usr/local/nvidia/lib64 2>&1 | head",
            "for t in sh bwrap setpriv prlimit; do echo $t: $(command -v $t); done; setpriv --version; bwrap --version",
            (
                "for f in --no-new-privs --bounding-set=-all --inh-caps=-all "
                "--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked,+keep_caps_locked; "
                "do setpriv $f -- true && echo ok $f || echo FAILED $f; done"
            ),
            (
                "id nobody; getent group nogroup; ls -ld /opt/torch /opt/torch/.venv /opt/torch/.venv/bin/python3; "
                "readlink -f /opt/torch/.venv/bin/python3"
            ),
            f'{python} -c "{probe}"',
        ]
    )
    (out / "machine.txt").write_text(text)
    return {"cpuModel": model, "smi": smi}


# ------------------------------------------------------------------------------------------------ setup


def install_sources(root: Path) -> None:
    src = root / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(
        REPO / "python" / "driver" / "kiln_driver", src / "driver" / "kiln_driver"
    )
    shutil.copytree(
        REPO / "python" / "runtime" / "kiln_runtime", src / "runtime" / "kiln_runtime"
    )
    for p in [root, src, *src.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def export_models(root: Path, python: str) -> dict[str, Path]:
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [python, str(REPO / "test" / "fixtures" / "make_models.py"), str(models)],
        check=True,
    )
    for p in models.iterdir():
        p.chmod(0o644)
    models.chmod(0o755)
    return {p.stem: p for p in models.glob("*.pt2")}


def write_job(
    plan: dict[str, Any],
    job: dict[str, Any],
    model: Path,
    host: dict[str, Any],
    notes: list[str],
) -> None:
    jd = Path(job["jobDir"])
    shutil.rmtree(jd, ignore_errors=True)
    jd.mkdir(parents=True)
    jd.chmod(0o711)
    for sub in ("tmp", "cache", "home", "out"):
        (jd / sub).mkdir(mode=0o700)
        os.chown(jd / sub, *NOBODY)
    # The job's /etc/passwd and /etc/group (sandbox-view.ts sandboxPasswd), bound read-only by the plan.
    etc = jd / ".sandbox"
    etc.mkdir(mode=0o755)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    for f in etc.iterdir():
        f.chmod(0o444)
    shutil.copyfile(model, jd / "model.pt2")
    (jd / "model.pt2").chmod(0o444)
    target = plan["targets"][job["targetId"]]
    model_hash = content_hash(model)
    sandbox = json.loads(json.dumps(job["applied"]))
    sandbox["notes"] = [*sandbox["notes"], *notes]
    driver_job = {
        "targetId": job["targetId"],
        "recipe": target["recipe"],
        "recipeHash": target["recipeHash"],
        "modelContentHash": model_hash,
        "cacheKey": cache_key(
            plan["tenantId"], model_hash, job["targetId"], target["recipeHash"]
        ),
        "requires": target["requires"],
        "host": host,
        "sandbox": sandbox,
        "timing": plan["timing"],
        "seed": 0,
    }
    (jd / "job.json").write_text(json.dumps(driver_job, indent=2) + "\n")
    (jd / "job.json").chmod(0o444)


# ---------------------------------------------------------------------------------------------- sandbox


def adapt_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """The plan's tool paths where this machine has them elsewhere; setpriv flags this setpriv refuses dropped."""
    notes: list[str] = []
    out: list[str] = []
    for arg in argv:
        tool = arg.startswith("/") and Path(arg).name in (
            "sh",
            "bwrap",
            "setpriv",
            "prlimit",
        )
        found = (
            shutil.which(Path(arg).name) if tool and not Path(arg).exists() else None
        )
        if found:
            notes.append(f"{arg} is {found} here")
        out.append(found or arg)
    bad = {
        f
        for f in ("--no-new-privs", "--bounding-set=-all", "--inh-caps=-all")
        if subprocess.run(
            ["setpriv", f, "--", "true"], capture_output=True, check=False
        ).returncode
        != 0
    }
    if bad:
        notes.append(f"this setpriv refuses {sorted(bad)}: dropped")
        out = [a for a in out if a not in bad]
    return out, notes


def job_cgroup(name: str, memory_bytes: int, pids: int) -> list[str]:
    """The command prefix that joins a fresh cgroup (v2) with the plan's memory and pids limits, as the worker's
    sandbox-run.ts does before the privilege drop. The runner's own cgroup must hand memory and pids to its children:
    when it holds processes (cgroup v2 allows no internal processes then), they move into a leaf first."""
    own = Path("/sys/fs/cgroup") / Path("/proc/self/cgroup").read_text().strip().split(
        "::", 1
    )[1].lstrip("/")
    if not {"memory", "pids"} <= set(
        (own / "cgroup.subtree_control").read_text().split()
    ):
        leaf = own / "kiln-runner"
        leaf.mkdir(exist_ok=True)
        for pid in (own / "cgroup.procs").read_text().split():
            try:
                (leaf / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # gone meanwhile
        (own / "cgroup.subtree_control").write_text("+memory +pids")
    job = own / f"kiln-{name}"
    job.mkdir(exist_ok=True)
    (job / "memory.max").write_text(str(memory_bytes))
    (job / "memory.swap.max").write_text("0")
    (job / "pids.max").write_text(str(pids))
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(job)]


def cgroup_prefix(job: dict[str, Any]) -> list[str]:
    applied = job["applied"]
    return job_cgroup(job["name"], applied["memoryBytes"], applied["pidsLimit"])


SMOKE = (
    "import os, torch; x = torch.ones(1024, device='cuda'); "
    "print('uid', os.getuid(), 'cuda ok', torch.cuda.get_device_name(0), float((x * 2).sum()), "
    "'visible', torch.cuda.device_count(), 'CUDA_VISIBLE_DEVICES', os.environ.get('CUDA_VISIBLE_DEVICES')); "
    "print('dev', sorted(d for d in os.listdir('/dev') if d.startswith('nvidia'))); "
    "print('shm', os.listdir('/dev/shm'), 'tmp', os.listdir('/tmp'), "
    "'jobs', os.listdir(os.path.dirname(os.getcwd()))); "
    "f = torch.compile(lambda t: torch.relu(t) * 2 + 1); print('triton ok', float(f(x).sum()))"
)


def smoke_ladder(
    job: dict[str, Any], python: str, log: Path
) -> tuple[str, dict[str, str], list[str]]:
    """Which way of running the driver works here: (mode, extra env, notes)."""
    argv, notes = adapt_argv(job["argv"])
    driver_at = argv.index(python)
    prefix = argv[:driver_at]
    extras: list[tuple[str, dict[str, str]]] = [("sandbox", {})]
    more = {
        k: os.environ[k] for k in ("LD_LIBRARY_PATH", "CUDA_HOME") if os.environ.get(k)
    }
    if more:
        extras.append(("sandbox+env", more))
    lines = []
    for mode, extra in [*extras, ("no-sandbox", more)]:
        cmd = ([] if mode == "no-sandbox" else cgroup_prefix(job) + prefix) + [
            python,
            "-c",
            SMOKE,
        ]
        env = {**job["env"], **extra}
        p = subprocess.run(
            cmd,
            cwd=job["jobDir"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines.append(
            f"== {mode} (extra env {sorted(extra)}): exit {p.returncode}\n{p.stdout}{p.stderr[-3000:]}"
        )
        if p.returncode == 0 and "cuda ok" in p.stdout and "triton ok" in p.stdout:
            log.write_text("\n".join(lines))
            if mode != "sandbox":
                notes.append(
                    f"CUDA did not work in the plain sandbox; ran as '{mode}' with {sorted(extra)}"
                )
            return mode, extra, notes
    log.write_text("\n".join(lines))
    raise SystemExit("CUDA does not work even outside the sandbox")


# ----------------------------------------------------------------------------------------------- builds


def run_build(
    job: dict[str, Any],
    python: str,
    how: tuple[str, dict[str, str]],
    out: Path,
    timeout: float,
) -> Any:
    mode, extra = how
    # Each job its own sandbox command line (its own job folder is the one bound back in).
    argv = (
        job["argv"]
        if mode == "no-sandbox"
        else cgroup_prefix(job) + adapt_argv(job["argv"])[0]
    )
    argv = argv[argv.index(python) :] if mode == "no-sandbox" else argv
    jd = Path(job["jobDir"])
    dest = out / "jobs" / job["name"]
    dest.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (dest / "events.jsonl").open("w") as so, (dest / "build.log").open("w") as se:
        try:
            env = {**job["env"], **extra}
            p = subprocess.run(
                argv,
                cwd=jd,
                env=env,
                stdout=so,
                stderr=se,
                timeout=timeout,
                check=False,
            )
            code = p.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    shutil.copyfile(jd / "job.json", dest / "job.json")
    result: dict[str, Any] = {
        "name": job["name"],
        "exit": code,
        "wallSeconds": round(time.monotonic() - started, 1),
    }
    for name in ("manifest.json", "error.json"):
        if (jd / "out" / name).exists():
            shutil.copyfile(jd / "out" / name, dest / name)
            result["ok"] = name == "manifest.json"
    print(
        f"[{elapsed():6.1f}s] {job['name']}: exit {code} in {result['wallSeconds']} s",
        flush=True,
    )
    return result


# ------------------------------------------------------------------------------------------------ bench


def bench_model(
    model: str,
    builds: list[dict[str, Any]],
    models: dict[str, Path],
    python: str,
    out: Path,
) -> list:
    arts = []
    for b in builds:
        if not b.get("ok") or not b["name"].startswith(model + "-"):
            continue
        job = next(j for j in PLAN["jobs"] if j["name"] == b["name"])
        work = Path(PLAN["deviceRoot"]) / "bench" / b["name"]
        work.mkdir(parents=True, exist_ok=True)
        arts.append(
            {
                "name": b["name"],
                "manifest": str(out / "jobs" / b["name"] / "manifest.json"),
                "parts": str(Path(job["jobDir"]) / "out" / "parts"),
                "work": str(work),
            }
        )
    if not arts:
        return []
    req = Path(PLAN["deviceRoot"]) / "bench" / f"{model}.json"
    req.write_text(json.dumps({"portable": str(models[model]), "artifacts": arts}))
    child = Path(__file__).resolve().parent / "load_and_time.py"
    src = Path(PLAN["deviceRoot"]) / "src"
    env = {
        **os.environ,
        "AOTI_RUNTIME_CHECK_INPUTS": "1",
        "TMPDIR": str(req.parent),
        "CUDA_VISIBLE_DEVICES": "0",
    }
    env.pop("KILN_TIMING_LOCK", None)
    env.pop("CXX", None)
    p = subprocess.run(
        [python, str(child), str(req), str(src / "driver"), str(src / "runtime")],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    (out / "jobs" / f"bench-{model}.log").write_text(p.stderr[-20000:])
    print(f"[{elapsed():6.1f}s] bench {model}: exit {p.returncode}", flush=True)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [{"model": model, "error": p.stderr[-2000:]}]


# ------------------------------------------------------------------------------------------------- main

PLAN: dict[str, Any] = {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lanes", type=int, default=3)
    ap.add_argument(
        "--deadline",
        type=float,
        default=520.0,
        help="seconds: no new build starts after it minus 100",
    )
    ap.add_argument("--only", nargs="*", help="job names (default: all)")
    ap.add_argument("--no-bench", action="store_true")
    args = ap.parse_args()
    PLAN.update(json.loads(args.plan.read_text()))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    python = PLAN["python"]
    root = Path(PLAN["deviceRoot"])

    machine = record_machine(out, python)
    print(f"[{elapsed():6.1f}s] machine recorded: {machine['smi']}", flush=True)
    install_sources(root)
    models = export_models(root, python)
    print(f"[{elapsed():6.1f}s] exported {sorted(models)}", flush=True)
    smi = machine["smi"].splitlines()[0].split(", ")
    sys.path[:0] = [str(root / "src" / "driver"), str(root / "src" / "runtime")]
    from kiln_driver.toolchain import host_x86_level

    host = {
        "cpuModel": machine["cpuModel"],
        "x86Level": host_x86_level(),
        "gpuName": smi[0],
        "driverVersion": smi[2],
    }
    jobs = [j for j in PLAN["jobs"] if not args.only or j["name"] in args.only]
    jobs_root = Path(jobs[0]["jobDir"]).parent
    jobs_root.mkdir(parents=True, exist_ok=True)
    jobs_root.chmod(0o711)

    write_job(PLAN, jobs[0], models[jobs[0]["model"]], host, [])
    # Builds side by side take turns to time (the driver's KILN_TIMING_LOCK): nobody must be able to open it.
    lock = Path(jobs[0]["env"].get("KILN_TIMING_LOCK", root / "timing.lock"))
    lock.touch()
    lock.chmod(0o644)
    mode, extra, notes = smoke_ladder(jobs[0], python, out / "sandbox-smoke.txt")
    print(
        f"[{elapsed():6.1f}s] driver runs as: {mode} {sorted(extra)} {notes}",
        flush=True,
    )
    for job in jobs:
        write_job(PLAN, job, models[job["model"]], host, [f"ran as '{mode}'", *notes])

    # Lanes: one per model, fp32 first (compiles are CPU work, 16 cores; timings take turns and are redone below).
    order = ["mlp", "transformer", "cnn"]
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(max(1, args.lanes))]
    for job in sorted(
        jobs,
        key=lambda j: (order.index(j["model"]), not j["targetId"].endswith("sm90")),
    ):
        lanes[order.index(job["model"]) % len(lanes)].append(job)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker(lane: list[dict[str, Any]]) -> None:
        for job in lane:
            if elapsed() > args.deadline - 100:
                with lock:
                    results.append({"name": job["name"], "skipped": "deadline"})
                continue
            r = run_build(
                job, python, (mode, extra), out, min(300.0, args.deadline - elapsed())
            )
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker, args=(lane,)) for lane in lanes if lane]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    bench: list[Any] = []
    if not args.no_bench:
        for model in ("mlp", "transformer", "cnn"):
            if elapsed() > args.deadline - 30:
                bench.append({"model": model, "skipped": "deadline"})
                continue
            bench.extend(bench_model(model, results, models, python, out))
    (out / "bench.json").write_text(json.dumps(bench, indent=2) + "\n")
    summary = {
        "mode": mode,
        "extraEnv": sorted(extra),
        "notes": notes,
        "builds": results,
        "seconds": elapsed(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.copytree(
        models[next(iter(models))].parent, out / "models", dirs_exist_ok=True
    )
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
