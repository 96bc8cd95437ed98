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
 *  - `torch.ops.higher_order.<name>` (higher-order ops have no overloads) when `higher_order` is allowed and
 *    `<name>` is in HIGHER_ORDER_OPS;
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

/**
 * The higher-order operators a program may call. torch resolves `torch.ops.higher_order.<name>` against its
 * registry of higher-order operators (41 in torch 2.13: `torch._ops._higher_order_ops`), which export's
 * serializer writes generically and the deserializer accepts generically. Of those, Kiln accepts the ones
 * torch.export produces for inference programs and whose arguments are graphs, tensors and operators that are
 * themselves checked (subgraphs, `as_operator` targets):
 *
 *  - control flow: cond, while_loop, map_impl, scan, associative_scan;
 *  - what export's own passes insert: wrap_with_set_grad_enabled, wrap_with_autocast (set_grad/autocast
 *    regions), invoke_subgraph (nested compile regions), auto_functionalized(_v2) (custom ops that mutate
 *    inputs, wrapping an op passed as `as_operator`), with_effects (ops with effect tokens), run_const_graph;
 *  - flex_attention (its score/mask modifiers are subgraphs), out_dtype (quantized matmuls), hints_wrapper.
 *
 * Refused: the ones that carry code or native artifacts (aoti_call_delegate loads a compiled .so by path,
 * executorch_call_delegate a backend blob, inline_asm_elementwise inline assembly, triton_kernel_wrapper_*
 * user kernels), that call Python objects (invoke_leaf_function, flat_apply, autograd_function_apply,
 * custom_function_call, call_torchbind), that have side effects (print, _export_tracepoint), and training
 * or compiler internals (flex_attention_backward, the rng-state, checkpointing and dynamo/inductor wrappers,
 * strict_mode, local_map_hop, invoke_quant*, foreach_map, while_loop_stack_output, wrap).
 * libs/pt2/src/op-targets.spec.ts checks that each accepted name exists in the installed torch.
 */
export const HIGHER_ORDER_OPS: ReadonlySet<string> = new Set([
  'cond',
  'while_loop',
  'map_impl',
  'scan',
  'associative_scan',
  'wrap_with_set_grad_enabled',
  'wrap_with_autocast',
  'invoke_subgraph',
  'auto_functionalized',
  'auto_functionalized_v2',
  'with_effects',
  'run_const_graph',
  'flex_attention',
  'out_dtype',
  'hints_wrapper',
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
  if (namespace === 'higher_order' && !HIGHER_ORDER_OPS.has(parts[1])) {
    reject(
      `higher-order operator '${parts[1]}' is not one Kiln accepts (${[...HIGHER_ORDER_OPS].join(', ')}); others carry native code, Python callables or training internals`,
    );
  }
  if (DENIED_OPS.has(`${namespace}.${parts[1]}`)) reject('this op touches the host filesystem');
  return parts.join('.');
}
