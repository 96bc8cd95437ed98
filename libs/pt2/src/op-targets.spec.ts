import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { DEFAULT_PT2_LIMITS } from './limits.js';
import { checkOpTarget, HIGHER_ORDER_OPS } from './op-targets.js';

const VENV_PYTHON = resolve(dirname(fileURLToPath(import.meta.url)), '../../../.kiln/venv/bin/python');

const check = (target: string) => checkOpTarget(target, DEFAULT_PT2_LIMITS.allowedOpNamespaces, 'node');

describe('checkOpTarget', () => {
  it('accepts what export serializes and strips torch.ops. for the histogram key', () => {
    assert.equal(check('torch.ops.aten.linear.default'), 'aten.linear.default');
    assert.equal(check('torch.ops.aten._assert_scalar.default'), 'aten._assert_scalar.default');
    assert.equal(check('torch.ops.prims.convert_element_type.default'), 'prims.convert_element_type.default');
    assert.equal(check('torch.ops.higher_order.cond'), 'higher_order.cond');
    assert.equal(check('_operator.getitem'), '_operator.getitem');
    assert.equal(check('_operator.floordiv'), '_operator.floordiv');
    assert.equal(check('math.trunc'), 'math.trunc');
    assert.equal(check('torch.sym_max'), 'torch.sym_max');
    assert.equal(check('torch._sym_sqrt'), 'torch._sym_sqrt');
  });

  const refused: [string, RegExp][] = [
    ['torch.ops.evil.boom.default', /namespace 'evil' is not in the allowlist/],
    ['torch.ops.quantized_decomposed.quantize_per_tensor.default', /not in the allowlist/],
    ['torch.load', /only torch\.ops/],
    ['torch.hub.load', /only torch\.ops/],
    ['_operator.methodcaller', /only torch\.ops/],
    ['_operator.call', /only torch\.ops/],
    ['builtins.eval', /only torch\.ops/],
    ['math.pow', /only torch\.ops/],
    ['#custom:op', /only torch\.ops/],
    ['torch.ops.aten.linear', /expected torch\.ops\.aten\.<op>\.<overload>/],
    ['torch.ops.aten.linear.default.extra', /expected torch\.ops\.aten/],
    ['torch.ops.higher_order.cond.default', /expected torch\.ops\.higher_order\.<name>/],
    ['torch.ops.aten.__class__.__base__', /malformed/],
    ['torch.ops.aten.linear.def ault', /malformed/],
    ['torch.ops.aten.from_file.default', /filesystem/],
    // Higher-order ops torch registers but Kiln does not accept: native code, Python callables, internals.
    ['torch.ops.higher_order.aoti_call_delegate', /higher-order operator 'aoti_call_delegate' is not one Kiln accepts/],
    ['torch.ops.higher_order.inline_asm_elementwise', /'inline_asm_elementwise' is not one Kiln accepts/],
    ['torch.ops.higher_order.executorch_call_delegate', /not one Kiln accepts/],
    ['torch.ops.higher_order.invoke_leaf_function', /not one Kiln accepts/],
    ['torch.ops.higher_order.flat_apply', /not one Kiln accepts/],
    ['torch.ops.higher_order.call_torchbind', /not one Kiln accepts/],
    ['torch.ops.higher_order.triton_kernel_wrapper_functional', /not one Kiln accepts/],
    ['torch.ops.higher_order.print', /not one Kiln accepts/],
    ['torch.ops.higher_order.autograd_function_apply', /not one Kiln accepts/],
    ['torch.ops.higher_order.evil', /not one Kiln accepts/],
  ];
  for (const [target, message] of refused) {
    it(`refuses ${target}`, () => {
      assert.throws(
        () => check(target),
        (err: unknown) =>
          err instanceof KilnError && err.code === ErrorCode.PT2_UNKNOWN_OP_NAMESPACE && message.test(err.message),
      );
    });
  }

  it('accepts each higher-order op of the allowlist', () => {
    for (const name of HIGHER_ORDER_OPS) assert.equal(check(`torch.ops.higher_order.${name}`), `higher_order.${name}`);
  });

  it('accepts only higher-order ops that exist in the installed torch', (t) => {
    if (!existsSync(VENV_PYTHON)) {
      t.skip(`no ${VENV_PYTHON} (scripts/setup.sh installs it): cannot ask torch for its higher-order operators`);
      return;
    }
    const registered = JSON.parse(
      execFileSync(
        VENV_PYTHON,
        [
          '-c',
          'import json, torch, torch._higher_order_ops; from torch._ops import _higher_order_ops as r; print(json.dumps(sorted(r)))',
        ],
        { encoding: 'utf8' },
      ),
    ) as string[];
    const missing = [...HIGHER_ORDER_OPS].filter((name) => !registered.includes(name));
    assert.deepEqual(missing, [], `not registered in this torch: ${missing.join(', ')}`);
  });

  it('names the op in the message', () => {
    assert.throws(() => check('torch.ops.evil.boom.default'), /'torch\.ops\.evil\.boom\.default'/);
  });

  it('honours a wider namespace allowlist', () => {
    assert.equal(
      checkOpTarget(
        'torch.ops.quantized_decomposed.quantize_per_tensor.default',
        ['aten', 'quantized_decomposed'],
        'node',
      ),
      'quantized_decomposed.quantize_per_tensor.default',
    );
  });
});
