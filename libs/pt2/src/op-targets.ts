import { ErrorCode } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';

/**
 * Node targets (and `as_operator` arguments) are strings that torch's deserializer resolves by
 * walking attributes from the `torch`, `operator` or `math` module (`deserialize_operator`), and any
 * callable it reaches goes into the graph as a `call_function`. So `torch.load`, `torch.hub.load` or
 * `_operator.methodcaller` would be called when the graph runs. Only these forms are accepted:
 *
 *  - `torch.ops.<ns>.<op>.<overload>` with `<ns>` in the allowed namespaces (an OpOverload, the form
 *    serialize_operator writes for every ATen/prims op);
 *  - `torch.ops.higher_order.<name>` (higher-order ops have no overloads) when `higher_order` is allowed;
 *  - the exact Python builtins export serializes for symbolic-int arithmetic (`_SYM_OPS` in
 *    torch/_export/serde/serialize.py, plus `operator.getitem` for multi-output nodes).
 */
const PYTHON_SYM_OPS: ReadonlySet<string> = new Set([
  '_operator.getitem',
  '_operator.add',
  '_operator.sub',
  '_operator.mul',
  '_operator.floordiv',
  '_operator.truediv',
  '_operator.mod',
  '_operator.pow',
  '_operator.neg',
  '_operator.pos',
  '_operator.eq',
  '_operator.ne',
  '_operator.le',
  '_operator.ge',
  '_operator.lt',
  '_operator.gt',
  '_operator.and_',
  '_operator.or_',
  '_operator.lshift',
  '_operator.rshift',
  'math.trunc',
  'torch.sym_not',
  'torch.sym_int',
  'torch.sym_float',
  'torch.sym_ite',
  'torch.sym_max',
  'torch.sym_min',
  'torch.sym_sum',
  'torch._sym_sqrt',
]);

/** ATen ops with host side effects that have no place in a model uploaded for compilation. */
const DENIED_OPS: ReadonlySet<string> = new Set([
  // Reads an arbitrary file of the host into a tensor.
  'aten.from_file',
]);

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_TARGET_LENGTH = 512;

/**
 * Checks one operator string; returns its op-histogram key (the target without `torch.ops.`).
 * Throws KilnError(PT2_UNKNOWN_OP_NAMESPACE) naming the op and where it was found otherwise.
 */
export function checkOpTarget(target: string, allowedNamespaces: readonly string[], where: string): string {
  const reject = (why: string): never => {
    throw pt2Error(
      ErrorCode.PT2_UNKNOWN_OP_NAMESPACE,
      `${where}: operator '${excerpt(target)}' is not allowed: ${why}`,
      {
        op: excerpt(target, 200),
        where,
      },
    );
  };
  if (target.length > MAX_TARGET_LENGTH) reject('name too long');
  if (PYTHON_SYM_OPS.has(target)) return target;
  if (!target.startsWith('torch.ops.')) {
    return reject(
      `only torch.ops.{${allowedNamespaces.join(',')}}.* operators and symbolic-int arithmetic (operator.*, math.trunc, torch.sym_*) are accepted`,
    );
  }
  const parts = target.slice('torch.ops.'.length).split('.');
  // Dunder components would turn the attribute walk into Python introspection (`__class__`, ...).
  if (!parts.every((p) => IDENTIFIER.test(p) && !p.startsWith('__'))) reject('malformed operator name');
  const namespace = parts[0];
  if (!allowedNamespaces.includes(namespace)) {
    reject(`namespace '${namespace}' is not in the allowlist (${allowedNamespaces.join(', ')})`);
  }
  const expectedParts = namespace === 'higher_order' ? 2 : 3;
  if (parts.length !== expectedParts) {
    reject(
      namespace === 'higher_order'
        ? 'expected torch.ops.higher_order.<name>'
        : `expected torch.ops.${namespace}.<op>.<overload>`,
    );
  }
  if (DENIED_OPS.has(`${namespace}.${parts[1]}`)) reject('this op touches the host filesystem');
  return parts.join('.');
}
