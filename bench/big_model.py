"""Writes the multi-GB model of bench/big-model.ts: a plain-torch MLP of square Linear layers, exported with
torch.export (dynamic batch) and saved as a .pt2. No downloads; seeded, so the same arguments give the same weights.

    python bench/big_model.py OUT.pt2 [--width 8192] [--layers 8] [--max-batch 32] [--seed 0]

The defaults give 8 weights of 8192x8192 float32 (256 MiB each) + biases: 2 GiB + 256 KiB of weights. Prints one
JSON line: file size, weight bytes, parameter count, seconds, this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim


class BigMLP(nn.Module):
    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            # Alternate activations so that the program is more than one repeated pattern.
            x = torch.relu(x) if i % 2 == 0 else torch.nn.functional.gelu(x)
        return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    with torch.no_grad():
        model = BigMLP(args.width, args.layers).eval()
        example = (torch.randn(4, args.width),)
        batch = Dim("batch", min=1, max=args.max_batch)
        ep = torch.export.export(model, example, dynamic_shapes=({0: batch},))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(ep, args.out)
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(
        json.dumps(
            {
                "path": str(args.out),
                "fileBytes": args.out.stat().st_size,
                "weightBytes": weight_bytes,
                "parameters": params,
                "seconds": round(time.perf_counter() - t0, 1),
                "peakRssMiB": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
