import { excerpt } from './errors.js';
import { isJsonObject, type Json, type JsonDoc } from './json-doc.js';
import { own } from './tensor-meta.js';

/**
 * The input/output "treespecs" of `graph_module.module_call_graph[].signature` are JSON strings that
 * torch.export.load decodes with torch.utils._pytree.treespec_loads. Two parts of that decoder import Python
 * modules named by the file:
 *
 *  - every JSON object inside a node's `context` goes through `enum_object_hook`, which for
 *    `{"__enum__": ..., "fqn": "<module>:<attr>", "name": ...}` runs `importlib.import_module(<module>)` and then
 *    indexes an attribute of it (checked with torch 2.13: a context naming the module `this` prints the Zen of
 *    Python while the archive loads);
 *  - a `collections.defaultdict` node imports `default_factory_module` and takes `default_factory_name` from it.
 *
 * So: the spec must be protocol 1, every node's type one of torch's built-in pytree types (no defaultdict), its
 * context JSON free of `__enum__` objects, and the tree bounded in size.
 */

/** Serialized names of the pytree node types torch registers itself, minus defaultdict (it imports a module). */
const TREESPEC_TYPES: ReadonlySet<string> = new Set([
  'builtins.tuple',
  'builtins.list',
  'builtins.dict',
  'collections.namedtuple',
  'collections.OrderedDict',
  'collections.deque',
  'torch.fx.immutable_collections.immutable_list',
  'torch.fx.immutable_collections.immutable_dict',
  'torch.Size',
]);

const MAX_TREESPEC_NODES = 100_000;
const MAX_TREESPEC_DEPTH = 256;

export function checkTreeSpec(doc: JsonDoc, text: string, path: string): void {
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch {
    return doc.fail(path, 'is not valid JSON (a pytree spec torch would decode)');
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || parsed[0] !== 1) {
    return doc.fail(path, 'must be a protocol-1 pytree spec ([1, {...}])');
  }
  let nodes = 0;
  const stack: { spec: Json; at: string; depth: number }[] = [{ spec: parsed[1], at: path, depth: 0 }];
  while (stack.length > 0) {
    const { spec, at, depth } = stack.pop()!;
    if (++nodes > MAX_TREESPEC_NODES || depth > MAX_TREESPEC_DEPTH) doc.fail(path, 'is too large or too deep');
    if (!isJsonObject(spec)) return doc.fail(at, 'must hold pytree spec objects');
    const keys = Object.keys(spec).sort().join(',');
    if (keys !== 'children_spec,context,type') {
      return doc.fail(at, 'must be a pytree spec node {type, context, children_spec}');
    }
    const type = own(spec, 'type');
    const context = own(spec, 'context');
    const children = own(spec, 'children_spec');
    if (!Array.isArray(children)) return doc.fail(at, 'has children_spec that is not a list');
    if (type === null) {
      if (context !== null || children.length !== 0) doc.fail(at, 'is a leaf with a context or children');
      continue;
    }
    if (typeof type !== 'string' || !TREESPEC_TYPES.has(type)) {
      return doc.fail(
        at,
        `has the pytree type '${excerpt(typeof type === 'string' ? type : JSON.stringify(type), 60)}'; only torch's built-in containers are accepted (${[...TREESPEC_TYPES].join(', ')})`,
      );
    }
    if (typeof context !== 'string') return doc.fail(at, 'has a context that is not a JSON string');
    // A namedtuple's context is its registered name, looked up in torch's registry (never imported).
    if (type === 'collections.namedtuple') {
      children.forEach((child, i) => stack.push({ spec: child, at: `${at}.children_spec[${i}]`, depth: depth + 1 }));
      continue;
    }
    let contextValue: Json;
    try {
      contextValue = JSON.parse(context) as Json;
    } catch {
      return doc.fail(at, 'has a context that is not valid JSON');
    }
    // Every object of the context passes through torch's enum hook, which imports the module it names.
    const inner: Json[] = [contextValue];
    while (inner.length > 0) {
      const value = inner.pop()!;
      if (Array.isArray(value)) inner.push(...value);
      else if (isJsonObject(value)) {
        if (Object.hasOwn(value, '__enum__')) {
          return doc.fail(
            at,
            'has an enum in its context (torch.export.load imports the module it names); Kiln refuses pytree specs with enums',
          );
        }
        inner.push(...Object.values(value));
      }
    }
    children.forEach((child, i) => stack.push({ spec: child, at: `${at}.children_spec[${i}]`, depth: depth + 1 }));
  }
}
