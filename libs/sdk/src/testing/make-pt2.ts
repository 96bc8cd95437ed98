// Test and bench helper: a real torch.export archive of a given size, written by torch itself (an MLP of
// square Linear layers), so that it passes Kiln's validator. Needs the venv's Python with torch.
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const SCRIPT = `
import sys, torch
out, width, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class Wide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.layers = torch.nn.ModuleList([torch.nn.Linear(width, width, bias=False) for _ in range(layers)])
    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x
with torch.no_grad():
    ep = torch.export.export(Wide().eval(), (torch.randn(2, width),))
torch.export.save(ep, out)
`;

/**
 * Writes `<out>`: `layers` float32 weights of width×width (4·width² bytes each) plus a few KiB of program.
 * Returns the file's size.
 */
export async function makeWidePt2(
  out: string,
  opts: { width: number; layers: number; python?: string },
): Promise<number> {
  const python = opts.python ?? process.env.KILN_PYTHON ?? path.resolve('.kiln/venv/bin/python');
  await run(python, ['-c', SCRIPT, out, String(opts.width), String(opts.layers)], {
    env: { ...process.env, PYTHONWARNINGS: 'ignore' },
    maxBuffer: 16 * 1024 * 1024,
  });
  return (await stat(out)).size;
}
