"""Baseline for bench/compile-overhead.ts: a direct local AOTInductor compile of a .pt2 with a Kiln recipe.

    python bench/direct_compile.py MODEL.pt2 RECIPE.json OUT_DIR

Prints one JSON line: {"wallSeconds": ..., "compileSeconds": ...}. wallSeconds counts what a user running
this by hand pays too (interpreter start, torch import, load, compile); compileSeconds only
aoti_compile_and_package.
"""

import json
import sys
import time

start = time.perf_counter()
import torch

model, recipe_file, out_dir = sys.argv[1:4]
with open(recipe_file) as f:
    recipe = json.load(f)
ep = torch.export.load(model)
configs = {**recipe["inductorConfigs"], "cpp.cxx": (recipe["toolchain"]["cxx"],)}
t0 = time.perf_counter()
torch._inductor.aoti_compile_and_package(
    ep, package_path=f"{out_dir}/direct.pt2", inductor_configs=configs
)
compile_s = time.perf_counter() - t0
print(
    json.dumps(
        {"wallSeconds": time.perf_counter() - start, "compileSeconds": compile_s}
    )
)
