import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { DEFAULT_PT2_LIMITS } from './limits.js';
import { checkOpTarget } from './op-targets.js';

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
