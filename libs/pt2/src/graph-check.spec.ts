import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { BufferByteSource } from './byte-source.js';
import { readPt2 } from './read-pt2.js';
import { loadFixture, Pt2Files, type GraphJson, type ProgramJson } from './testing/archive-fixtures.js';

// The MLP fixture's graph: inputs p_net_{0,2,4}_{weight,bias} and x; nodes
//   0 linear(x) → linear   1 relu(linear) → relu   2 linear_1(relu) → linear_1   3 gelu → gelu   4 linear_2 → linear_2
// and the graph output linear_2. Each case edits it into one malformed graph.
const mlp = await loadFixture('mlp');

async function refused(edit: (p: ProgramJson) => void, message: RegExp, code = ErrorCode.PT2_MALFORMED_GRAPH) {
  const files = (await Pt2Files.from(mlp)).editProgram(edit);
  await assert.rejects(readPt2(new BufferByteSource(await files.build())), (err: unknown) => {
    assert.ok(err instanceof KilnError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

const tensor = (name: string) => ({ as_tensor: { name } });
const graphOf = (p: ProgramJson): GraphJson => p.graph_module.graph;

describe('PT2_MALFORMED_GRAPH: every value defined once, before use', () => {
  it('refuses a node that reads a tensor nothing defines', async () => {
    await refused((p) => {
      graphOf(p).nodes[1].inputs[0].arg = tensor('ghost');
    }, /graph_module\.graph\.nodes\[1\]\.inputs reads 'ghost', which nothing in the graph defines/);
  });

  it('refuses a node that consumes its own output', async () => {
    await refused((p) => {
      graphOf(p).nodes[1].inputs[0].arg = tensor('relu');
    }, /graph_module\.graph\.nodes\[1\] reads its own output 'relu'/);
  });

  it('refuses two nodes writing one output name', async () => {
    await refused((p) => {
      graphOf(p).nodes[3].outputs = [tensor('linear')];
    }, /nodes\[3\]\.outputs defines 'linear', which graph_module\.graph\.nodes\[0\]\.outputs already defines/);
  });

  it('refuses a node output that redefines a graph input', async () => {
    await refused((p) => {
      graphOf(p).nodes[4].outputs = [tensor('x')];
    }, /nodes\[4\]\.outputs defines 'x', which graph_module\.graph\.inputs\[6\] already defines/);
  });

  it('refuses a cycle (a node reads what a later node defines)', async () => {
    await refused((p) => {
      // relu reads linear_1 and linear_1 reads relu: relu → linear_1 → relu.
      graphOf(p).nodes[1].inputs[0].arg = tensor('linear_1');
    }, /nodes\[1\]\.inputs reads 'linear_1' before graph_module\.graph\.nodes\[2\] defines it/);
  });

  it('refuses a graph output nothing defines', async () => {
    await refused((p) => {
      graphOf(p).outputs = [tensor('ghost')];
      p.graph_module.signature.output_specs = [{ user_output: { arg: tensor('ghost') } }];
    }, /graph_module\.graph\.outputs\[0\] reads 'ghost', which nothing in the graph defines/);
  });

  it('refuses a value without metadata, or read as another kind than it was defined', async () => {
    await refused((p) => {
      delete graphOf(p).tensor_values.relu;
    }, /nodes\[1\]\.outputs defines the tensor 'relu', which graph_module\.graph\.tensor_values does not describe/);
    await refused((p) => {
      graphOf(p).nodes[1].inputs[0].arg = { as_sym_int: { as_name: 'linear' } };
    }, /reads 'linear' as a sym_int, but graph_module\.graph\.nodes\[0\]\.outputs defines it as a tensor/);
  });

  it('refuses value names that are not Python identifiers', async () => {
    await refused((p) => {
      const g = graphOf(p);
      g.nodes[0].outputs = [tensor('linear; import os')];
      g.tensor_values['linear; import os'] = g.tensor_values.linear;
    }, /names a value 'linear; import os', which is not a Python identifier/);
    await refused((p) => {
      graphOf(p).nodes[0].name = 'os.system';
    }, /nodes\[0\]\.name names a value 'os\.system'/);
  });
});

describe('PT2_MALFORMED_GRAPH: the signature describes the graph', () => {
  it('refuses input specs that name other values than the graph inputs, or another count', async () => {
    await refused((p) => {
      p.graph_module.signature.input_specs[6] = { user_input: { arg: tensor('linear') } };
    }, /input_specs\[6\] names 'linear' but graph input 6 is 'x'/);
    await refused((p) => {
      p.graph_module.signature.input_specs.push({ user_input: { arg: tensor('x') } });
    }, /input_specs lists 8 inputs but the graph has 7/);
  });

  it('refuses output specs that name another value than the graph output', async () => {
    await refused((p) => {
      p.graph_module.signature.output_specs = [{ user_output: { arg: tensor('gelu') } }];
    }, /output_specs\[0\] names 'gelu' but graph output 0 is 'linear_2'/);
  });
});

describe('PT2_MALFORMED_GRAPH: subgraphs of higher-order ops, each in its own scope', () => {
  const meta = (p: ProgramJson) => graphOf(p).tensor_values.x;
  /** Adds `cond(pred, true_graph_0, false_graph_0, (x,))` with the given true branch after the last node. */
  const withCond = (p: ProgramJson, trueBranch: (g: GraphJson) => void) => {
    const branch = (): GraphJson => ({
      inputs: [tensor('arg0_1')],
      outputs: [tensor('relu_b')],
      nodes: [
        {
          target: 'torch.ops.aten.relu.default',
          name: 'relu_b',
          inputs: [{ name: 'self', arg: tensor('arg0_1'), kind: 1 }],
          outputs: [tensor('relu_b')],
          metadata: {},
        },
      ],
      tensor_values: { arg0_1: meta(p), relu_b: meta(p) },
      sym_int_values: {},
      sym_bool_values: {},
      custom_obj_values: {},
    });
    const trueGraph = branch();
    trueBranch(trueGraph);
    const g = graphOf(p);
    g.tensor_values.cond_out = meta(p);
    g.nodes.push({
      target: 'torch.ops.higher_order.cond',
      name: 'cond_out',
      inputs: [
        { name: 'pred', arg: { as_bool: true }, kind: 1 },
        { name: 'true_fn', arg: { as_graph: { name: 'true_graph_0', graph: trueGraph } }, kind: 1 },
        { name: 'false_fn', arg: { as_graph: { name: 'false_graph_0', graph: branch() } }, kind: 1 },
        { name: 'operands', arg: { as_tensors: [{ name: 'x' }] }, kind: 1 },
      ],
      outputs: [tensor('cond_out')],
      metadata: {},
    });
  };

  it('accepts a well-formed cond', async () => {
    const files = (await Pt2Files.from(mlp)).editProgram((p) => withCond(p, () => undefined));
    const summary = await readPt2(new BufferByteSource(await files.build()));
    assert.equal(summary.opHistogram['higher_order.cond'], 1);
  });

  it('refuses a subgraph that reads a value of the graph around it', async () => {
    await refused(
      (p) =>
        withCond(p, (g) => {
          g.nodes[0].inputs[0].arg = tensor('x');
        }),
      /nodes\[5\]\.inputs\.true_graph_0\.nodes\[0\]\.inputs reads 'x', which nothing in the graph defines/,
    );
  });

  it('refuses a subgraph node that consumes its own output, or a subgraph output nothing defines', async () => {
    await refused(
      (p) =>
        withCond(p, (g) => {
          g.nodes[0].inputs[0].arg = tensor('relu_b');
        }),
      /true_graph_0\.nodes\[0\] reads its own output 'relu_b'/,
    );
    await refused(
      (p) =>
        withCond(p, (g) => {
          g.outputs = [tensor('nothing')];
        }),
      /true_graph_0\.outputs\[0\] reads 'nothing', which nothing in the graph defines/,
    );
  });

  it('refuses subgraph names that are not identifiers, or given twice', async () => {
    await refused((p) => {
      withCond(p, () => undefined);
      const node = graphOf(p).nodes[5];
      (node.inputs[2].arg.as_graph as { name: string }).name = 'true_graph_0';
    }, /passes two subgraphs named 'true_graph_0'/);
    await refused((p) => {
      withCond(p, () => undefined);
      (graphOf(p).nodes[5].inputs[1].arg.as_graph as { name: string }).name = '__class__.x';
    }, /names a value '__class__\.x'/);
  });
});
