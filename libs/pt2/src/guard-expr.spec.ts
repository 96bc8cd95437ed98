import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { checkGuard } from './guard-expr.js';

const LIMITS = { maxExprLength: 16_384, maxExprDepth: 64 };
const check = (code: string): void => checkGuard(code, 'guards_code[0]', LIMITS);

function refused(code: string, message: RegExp): void {
  assert.throws(
    () => check(code),
    (err: unknown) => {
      assert.ok(err instanceof KilnError, String(err));
      assert.equal(err.code, ErrorCode.PT2_GUARDS_CODE);
      assert.match(err.message, message);
      return true;
    },
    code,
  );
}

describe('checkGuard accepts what torch prints for size relations', () => {
  const accepted = [
    // torch 2.13, a derived Dim (y = 2 * x): the exact text export wrote
    "(2*L['x'].size()[0]) == L['y'].size()[0]",
    "L['x'].size()[0] <= 256",
    "2 <= L['x'].size()[0] and L['x'].size()[0] <= 16",
    "L['x'].size()[1] % 8 == 0",
    "(L['x'].size()[0] + 1) // 2 == L['mask'].size()[0]",
    "not (L['x'].size()[0] == 1)",
    "L['x'].stride()[0] == L['x'].size()[1] or L['x'].storage_offset() == 0",
    "max(L['a'].size()[0], L['b'].size()[0]) < 4096",
    "math.floor(L['x'].size()[0] ** 2) != -1",
    "L['kwargs']['y'][0].size()[2] >= abs(-3)",
    "L['n'] > 0", // a SymInt input
    'True',
  ];
  for (const guard of accepted) {
    it(guard, () => check(guard));
  }
});

describe('checkGuard refuses anything else, with a position', () => {
  const cases: [string, RegExp][] = [
    ["__import__('os').system('id')", /'__import__' is not a name a guard may use/],
    ["L['x'].__class__", /after an input, where size, stride or storage_offset was expected/],
    ["L['x'].size()[0] == eval('x')", /'eval' is not a name/],
    ["L['x'].size()[0] == eval('1')", /a string that is not a plain identifier .* at character 25/],
    ["L['x; import os'].size()[0] == 1", /a string that is not a plain identifier/],
    ['L["x"].size()[0] == 1', /the character "\\""/],
    ["(lambda: 1)() == 1 and L['x'].size()[0] > 0", /the character ":"/],
    ['lambda == 1', /'lambda' is not a name/],
    ["L['x'].size()[0] == 2**1000", /an exponent above 64/],
    ["L['x'].size()[0] == 2**L['y'].size()[0]", /where an integer was expected/],
    ["L['x'].size()[0] == 1; import os", /the character ";"/],
    ["L['x'].size()[0] == 1\nimport os", /the character "\\n"/],
    ["L['x'].size()[0] == 1 if True else 0", /'if' after a complete expression/],
    ["[c for c in L['x']]", /where a value was expected/],
    ['L.size()[0] == 1', /after L, where \['<input name>'\] was expected/],
    ["math.system('id')", /'math' is not a name/],
    ["L['x'].size()[0] == 123456789012345678901", /more than 20 digits/],
    ["L['x'].size()[0] == 1.5", /'\.' after a complete expression at character 21/],
    ["f'{1}'", /'f' is not a name|a string that is not a plain identifier/],
  ];
  for (const [guard, message] of cases) {
    it(JSON.stringify(guard), () => refused(guard, message));
  }

  it('bounds nesting and length', () => {
    refused(`${'('.repeat(70)}1${')'.repeat(70)} == 1`, /nested more than 64 deep/);
    refused(`${'-'.repeat(70)}1 == 1`, /nested more than 64 deep/);
    assert.throws(() => checkGuard("L['x'].size()[0] == 1", 'g', { maxExprLength: 10, maxExprDepth: 64 }), /limit 10/);
  });
});
