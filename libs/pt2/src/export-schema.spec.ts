import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { BufferByteSource } from './byte-source.js';
import { GENERATED_SCHEMA_VERSION } from './export-schema.generated.js';
import { SUPPORTED_SCHEMA_MAJOR } from './program.js';
import { readPt2 } from './read-pt2.js';
import { loadFixture, Pt2Files, type ProgramJson } from './testing/archive-fixtures.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const VENV_PYTHON = resolve(REPO_ROOT, '.kiln/venv/bin/python');
const mlp = await loadFixture('mlp');

async function refused(
  edit: (files: Pt2Files) => Pt2Files | Promise<Pt2Files>,
  message: RegExp,
  code: ErrorCode = ErrorCode.PT2_MALFORMED_PROGRAM,
): Promise<void> {
  const files = await edit(await Pt2Files.from(mlp));
  await assert.rejects(readPt2(new BufferByteSource(await files.build())), (err: unknown) => {
    assert.ok(err instanceof KilnError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}
const program = (edit: (p: ProgramJson & Record<string, unknown>) => void) => (files: Pt2Files) =>
  files.editProgram(edit as (p: ProgramJson) => void);

describe("the program against torch's export schema (generated from torch)", () => {
  it('the generated table matches the installed torch', (t) => {
    if (!existsSync(VENV_PYTHON)) {
      t.skip(`no ${VENV_PYTHON} (scripts/setup.sh installs it): cannot compare with torch's schema`);
      return;
    }
    execFileSync(VENV_PYTHON, [resolve(REPO_ROOT, 'scripts/generate-export-schema.py'), '--check'], {
      stdio: 'pipe',
    });
    assert.equal(GENERATED_SCHEMA_VERSION[0], SUPPORTED_SCHEMA_MAJOR);
  });

  it('refuses fields torch does not define, anywhere', async () => {
    await refused(
      program((p) => {
        p.payload = "__import__('os')";
      }),
      /models\/model\.json: payload is not a field of ExportedProgram/,
    );
    await refused(
      program((p) => {
        (p.graph_module.graph.nodes[0] as unknown as Record<string, unknown>).code = 'x';
      }),
      /graph_module\.graph\.nodes\[0\]\.code is not a field of Node/,
    );
    await refused(
      (files) =>
        files.editPayloadConfig('weights', (c) => {
          (c.config['net.0.bias'] as unknown as Record<string, unknown>).loader = 'pickle';
        }),
      /model_weights_config\.json: config\.net\.0\.bias\.loader is not a field of PayloadMeta/,
    );
  });

  it('refuses missing required fields, unions with two members, values of the wrong type', async () => {
    await refused(
      program((p) => {
        delete (p.graph_module.graph.nodes[0] as Partial<ProgramJson['graph_module']['graph']['nodes'][0]>).outputs;
      }),
      /nodes\[0\]\.outputs is missing \(a required field of Node\)/,
    );
    await refused(
      program((p) => {
        p.graph_module.graph.nodes[0].inputs[0].arg = { as_tensor: { name: 'x' }, as_int: 1 };
      }),
      /inputs\[0\]\.arg must be a Argument union with exactly one member/,
    );
    await refused(
      program((p) => {
        p.graph_module.graph.nodes[0].inputs[0].arg = { as_float: 'nan; import os' };
      }),
      /arg\.as_float must be a number \(or 'Infinity', '-Infinity', 'NaN'\), got the string 'nan; import os'/,
    );
    await refused(
      program((p) => {
        p.graph_module.graph.tensor_values.x.layout = 42;
      }),
      /tensor_values\.x\.layout must be one of the Layout values/,
    );
  });

  it('accepts the strings torch writes for non-finite floats', async () => {
    const files = (await Pt2Files.from(mlp)).editProgram((p) => {
      // masked_fill(x, mask, -inf) and friends: torch writes the float as the string '-Infinity'.
      p.graph_module.graph.nodes[3].inputs.push({
        name: 'fill',
        arg: { as_floats: ['-Infinity', 'NaN', 1.5] },
        kind: 2,
      });
    });
    await readPt2(new BufferByteSource(await files.build()));
  });
});

describe('pytree specs of the module call graph (torch imports modules they name)', () => {
  const withInSpec = (mutate: (spec: [number, Record<string, unknown>]) => void) =>
    program((p) => {
      const signature = p.graph_module.module_call_graph[0].signature!;
      const spec = JSON.parse(signature.in_spec) as [number, Record<string, unknown>];
      mutate(spec);
      signature.in_spec = JSON.stringify(spec);
    });
  const kwargs = (spec: [number, Record<string, unknown>]) => (spec[1].children_spec as Record<string, unknown>[])[1];

  it('refuses an enum in a context (torch.export.load would import the module it names)', async () => {
    await refused(
      withInSpec((spec) => {
        kwargs(spec).context = JSON.stringify([{ __enum__: true, fqn: 'this:s', name: 'x' }]);
      }),
      /in_spec\.children_spec\[1\] has an enum in its context/,
    );
  });

  it('refuses defaultdict nodes (torch imports their default factory) and unknown types', async () => {
    await refused(
      withInSpec((spec) => {
        kwargs(spec).type = 'collections.defaultdict';
        kwargs(spec).context = JSON.stringify({
          default_factory_module: 'os',
          default_factory_name: 'fork',
          dict_context: [],
        });
      }),
      /has the pytree type 'collections\.defaultdict'/,
    );
    await refused(
      withInSpec((spec) => {
        kwargs(spec).type = 'os.system';
      }),
      /has the pytree type 'os\.system'/,
    );
  });

  it('refuses malformed specs and non-identifier argument names', async () => {
    await refused(
      program((p) => {
        p.graph_module.module_call_graph[0].signature!.out_spec = '[1, {"type": null';
      }),
      /out_spec is not valid JSON/,
    );
    await refused(
      program((p) => {
        p.graph_module.module_call_graph[0].signature!.forward_arg_names = ['x=__import__("os")'];
      }),
      /forward_arg_names\[0\] must be a Python identifier/,
    );
  });
});

describe('other program fields derived from the format', () => {
  it('refuses source_fn_stack targets that walk into Python internals', async () => {
    await refused(
      program((p) => {
        p.graph_module.graph.nodes[0].metadata.source_fn_stack = 'linear,torch.__builtins__.eval';
      }),
      /source_fn_stack names 'torch\.__builtins__\.eval'/,
    );
  });

  it('refuses negative sizes, strides or offsets in tensor metadata', async () => {
    await refused(
      program((p) => {
        p.graph_module.graph.tensor_values.relu.sizes[1] = { as_int: -256 };
      }),
      /tensor_values\.relu\.sizes\[1\] is negative \(-256\)/,
    );
    await refused(
      program((p) => {
        p.graph_module.graph.tensor_values.relu.strides[0] = { as_int: -1 };
      }),
      /tensor_values\.relu\.strides\[0\] is negative/,
    );
  });

  it('refuses an empty range constraint', async () => {
    await refused(
      program((p) => {
        for (const range of Object.values(p.range_constraints)) {
          range.min_val = 10;
          range.max_val = 2;
        }
      }),
      /range_constraints\.s\d+ is empty \(min 10 > max 2\)/,
    );
  });

  it('refuses a weights config entry that no parameter or buffer of the program names', async () => {
    await refused(
      (files) =>
        files.editPayloadConfig('weights', (c) => {
          c.config['smuggled.weight'] = { ...c.config['net.0.bias'] };
        }),
      /model_weights_config\.json: 'smuggled\.weight' is not a parameter or persistent buffer of the program/,
    );
  });
});

describe('hostile nesting', () => {
  it('refuses a program nested thousands of levels deep with a code, not a crash', async () => {
    // Argument.as_string_to_argument is recursive in torch's schema: 20 000 levels of it inside a node input.
    const deep = `${'{"as_string_to_argument":{"k":'.repeat(20_000)}{"as_int":1}${'}}'.repeat(20_000)}`;
    const files = await Pt2Files.from(mlp);
    const text = files.get('models/model.json').toString('utf8').replace('{"as_tensor": {"name": "x"}}', deep);
    assert.ok(text.length > 400_000, 'the deep argument is in place');
    files.set('models/model.json', text);
    await assert.rejects(readPt2(new BufferByteSource(await files.build())), (err: unknown) => {
      assert.ok(err instanceof KilnError, String(err));
      assert.equal(err.code, ErrorCode.PT2_MALFORMED_PROGRAM);
      assert.match(err.message, /nested more than 512 levels deep/);
      return true;
    });
  });
});
