import { ErrorCode, type DimSpec, type Pt2Summary, type TensorSpec } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';
import type { ShapeExprCache } from './expr-cache.js';
import {
  isJsonObject,
  JsonDoc,
  jsonPath,
  walkJson,
  type Json,
  type JsonLocation,
  type JsonObject,
} from './json-doc.js';
import type { Pt2Limits } from './limits.js';
import { checkExportSchema } from './export-schema.js';
import { checkGraphWellFormed } from './graph-check.js';
import { checkGuard } from './guard-expr.js';
import { checkTreeSpec } from './treespec.js';
import { checkOpTarget } from './op-targets.js';
import { SYMBOL_NAME } from './shape-expr.js';
import {
  concreteSizes,
  elementCount,
  own,
  parseSymInt,
  parseTensorMeta,
  type SymIntValue,
  type TensorMetaInfo,
} from './tensor-meta.js';

/** torch.export's schema major version Kiln reads (torch 2.13 writes 8.20; loaders reject other majors). */
export const SUPPORTED_SCHEMA_MAJOR = 8;

type TensorStats = Pt2Summary['parameters'];

/** A parameter, buffer or tensor constant the program expects a payload config to provide. */
export interface StateRef {
  role: 'parameter' | 'buffer' | 'constant';
  /** Graph-side metadata of the placeholder, to compare with the config's. */
  meta: TensorMetaInfo;
  sizes: number[];
  where: string;
}

export interface ProgramAnalysis {
  schemaVersion: { major: number; minor: number };
  torchVersion: string;
  opsetVersion: Record<string, number>;
  /** Recorded, never enforced: names of the verifier dialects (`TRAINING`, `ATEN`, ...). */
  verifiers: string[];
  opHistogram: Record<string, number>;
  nodeCount: number;
  userInputs: TensorSpec[];
  userOutputs: TensorSpec[];
  rangeConstraints: Pt2Summary['rangeConstraints'];
  /** The guards_code entries, each checked against the guard grammar. */
  guards: string[];
  parameters: TensorStats;
  buffers: TensorStats;
  constants: TensorStats;
  /** FQN → state stored in the weights config (parameters, persistent buffers). */
  weightsState: Map<string, StateRef>;
  /** FQN → state stored in the constants config (non-persistent buffers, tensor constants). */
  constantsState: Map<string, StateRef>;
}

/** Things found anywhere in the JSON tree, whatever structure they sit in. */
interface ScanResult {
  exprs: { value: string; location: JsonLocation }[];
  operators: { value: string; location: JsonLocation }[];
  customObjArgs: JsonLocation[];
  subgraphs: { graph: Json; location: JsonLocation }[];
}

/** A derived Dim's key in range_constraints, as str() prints it: symbols, integers, + - * and // . */
const DERIVED_DIM_KEY = /^[a-z0-9_]+( ?([+\-*]|\/\/) ?[a-z0-9_]+)+$/;

/** More guards than any export writes (one per relation between input sizes). */
const MAX_GUARDS = 1024;

const INPUT_SPEC_KINDS = new Set([
  'user_input',
  'parameter',
  'buffer',
  'tensor_constant',
  'custom_obj',
  'token',
  'constant_input',
]);
const OUTPUT_SPEC_KINDS = new Set([
  'user_output',
  'loss_output',
  'buffer_mutation',
  'gradient_to_parameter',
  'gradient_to_user_input',
  'user_input_mutation',
  'token',
  'parameter_mutation',
]);

/**
 * Validates `models/<name>.json` (a serialized ExportedProgram) and extracts what the summary needs.
 * Check order: schema version, guards code, custom objects, graph and operators, shape expressions,
 * then signature and tensor metadata.
 */
export function analyzeProgram(
  entry: string,
  bytes: Buffer,
  limits: Pt2Limits,
  exprs: ShapeExprCache,
): ProgramAnalysis {
  const parsed = JsonDoc.parse(entry, bytes);
  // Annotated so that doc.fail() (returns never) narrows types below.
  const doc: JsonDoc = parsed.doc;
  const root = parsed.root;
  const program = doc.object(root, '');

  // The schema version first: a different major means the rest may legitimately look different.
  const schema = doc.object(own(program, 'schema_version'), 'schema_version');
  const schemaVersion = {
    major: doc.int(own(schema, 'major'), 'schema_version.major'),
    minor: doc.int(own(schema, 'minor'), 'schema_version.minor'),
  };
  if (schemaVersion.major !== SUPPORTED_SCHEMA_MAJOR) {
    throw pt2Error(
      ErrorCode.PT2_UNSUPPORTED_SCHEMA,
      `${entry} uses export schema ${schemaVersion.major}.${schemaVersion.minor}; Kiln reads schema ${SUPPORTED_SCHEMA_MAJOR}.x (torch 2.13 writes 8.20)`,
      { entry, schemaVersion },
    );
  }

  // The iterative walk first: it bounds the nesting depth before anything recursive looks at the tree.
  const scan = scanProgram(doc, root, limits);
  // Every field torch reads must be one this validator knows: the whole document against torch's schema.
  checkExportSchema(doc, root, 'ExportedProgram');

  // guards_code holds Python source: ExportedProgram.module() exec()s it to build the input guards. Each
  // entry must fit the guard grammar (guard-expr.ts).
  const guardsCode = own(program, 'guards_code');
  const guardValues = guardsCode === undefined ? [] : doc.array(guardsCode, 'guards_code');
  if (guardValues.length > MAX_GUARDS) {
    throw pt2Error(
      ErrorCode.PT2_GUARDS_CODE,
      `${entry}: guards_code has ${guardValues.length} entries (limit ${MAX_GUARDS})`,
      { entry, count: guardValues.length },
    );
  }
  const guards = guardValues.map((g, i) => {
    const code = doc.string(g, `guards_code[${i}]`);
    checkGuard(code, `${entry} guards_code[${i}]`, limits);
    return code;
  });

  const torchVersionValue = own(program, 'torch_version');
  // The schema's default for archives written before the field existed.
  const torchVersion = torchVersionValue === undefined ? '<=2.4' : doc.string(torchVersionValue, 'torch_version');
  const opsetVersion: Record<string, number> = {};
  for (const [ns, version] of Object.entries(doc.object(own(program, 'opset_version'), 'opset_version'))) {
    opsetVersion[ns] = doc.int(version, `opset_version.${ns}`);
  }
  const verifiersValue = own(program, 'verifiers');
  const verifiers =
    verifiersValue === undefined
      ? []
      : doc.array(verifiersValue, 'verifiers').map((v, i) => doc.string(v, `verifiers[${i}]`));

  const graphModule = doc.object(own(program, 'graph_module'), 'graph_module');
  checkModuleCallGraph(doc, doc.array(own(graphModule, 'module_call_graph'), 'graph_module.module_call_graph'));
  const signature = doc.object(own(graphModule, 'signature'), 'graph_module.signature');
  const inputSpecs = doc.array(own(signature, 'input_specs'), 'graph_module.signature.input_specs');
  const outputSpecs = doc.array(own(signature, 'output_specs'), 'graph_module.signature.output_specs');

  const graphs = [
    { graph: doc.object(own(graphModule, 'graph'), 'graph_module.graph'), path: 'graph_module.graph' },
    ...scan.subgraphs.map(({ graph, location }) => ({
      graph: doc.object(graph, jsonPath(location)),
      path: jsonPath(location),
    })),
  ];

  checkCustomObjects(doc, graphs, inputSpecs, scan);
  const { opHistogram, nodeCount } = checkGraphs(doc, graphs, scan, limits);
  checkGraphWellFormed(entry, program);

  for (const { value, location } of scan.exprs) exprs.parse(value, entry, () => jsonPath(location));
  const rangeConstraints = parseRangeConstraints(doc, own(program, 'range_constraints'));

  // Every graph's metadata is checked; the signature refers to the top graph's.
  const [tensorValues] = graphs.map(({ graph, path }) => parseTensorValues(doc, graph, path));
  const io = analyzeSignature(doc, inputSpecs, outputSpecs, tensorValues, rangeConstraints, exprs);

  return {
    schemaVersion,
    torchVersion,
    opsetVersion,
    verifiers,
    opHistogram,
    nodeCount,
    rangeConstraints,
    guards,
    ...io,
  };
}

/**
 * One pass over the whole tree, wherever things sit: every `expr_str` (torch sympifies them all),
 * every `as_operator` (resolved like node targets), custom-object arguments and nested graphs.
 */
function scanProgram(doc: JsonDoc, root: Json, limits: Pt2Limits): ScanResult {
  const result: ScanResult = { exprs: [], operators: [], customObjArgs: [], subgraphs: [] };
  walkJson(doc, root, limits.maxJsonDepth, (key, value, location) => {
    switch (key) {
      // Paths are built only for messages: a large program has hundreds of thousands of these.
      case 'expr_str':
        if (typeof value !== 'string') doc.string(value, jsonPath(location));
        result.exprs.push({ value: value as string, location });
        break;
      case 'as_operator':
        if (typeof value !== 'string') doc.string(value, jsonPath(location));
        result.operators.push({ value: value as string, location });
        break;
      case 'as_custom_obj':
        result.customObjArgs.push(location);
        break;
      case 'as_graph': {
        const graphArg = doc.object(value, jsonPath(location));
        result.subgraphs.push({ graph: own(graphArg, 'graph') ?? null, location: { key: 'graph', parent: location } });
        break;
      }
    }
  });
  return result;
}

function checkCustomObjects(
  doc: JsonDoc,
  graphs: { graph: JsonObject; path: string }[],
  inputSpecs: Json[],
  scan: ScanResult,
): void {
  const reject = (where: string, what: string): never => {
    throw pt2Error(
      ErrorCode.PT2_CUSTOM_OBJECT,
      `${doc.entry}: ${where} ${what}; custom and opaque objects are pickles that torch.export.load unpickles, and Kiln does not accept them`,
      { entry: doc.entry, path: where },
    );
  };
  for (const { graph, path } of graphs) {
    const values = own(graph, 'custom_obj_values');
    if (values !== undefined && Object.keys(doc.object(values, `${path}.custom_obj_values`)).length > 0) {
      reject(`${path}.custom_obj_values`, 'is not empty');
    }
  }
  inputSpecs.forEach((spec, i) => {
    if (isJsonObject(spec) && Object.hasOwn(spec, 'custom_obj')) {
      reject(`graph_module.signature.input_specs[${i}]`, 'is a custom object input');
    }
  });
  if (scan.customObjArgs.length > 0) reject(jsonPath(scan.customObjArgs[0]), 'passes a custom object');
}

function checkGraphs(
  doc: JsonDoc,
  graphs: { graph: JsonObject; path: string }[],
  scan: ScanResult,
  limits: Pt2Limits,
): { opHistogram: Record<string, number>; nodeCount: number } {
  const nodeLists = graphs.map(({ graph, path }) => {
    for (const key of ['inputs', 'outputs']) doc.array(own(graph, key), `${path}.${key}`);
    for (const key of ['tensor_values', 'sym_int_values', 'sym_bool_values'])
      doc.object(own(graph, key), `${path}.${key}`);
    return { nodes: doc.array(own(graph, 'nodes'), `${path}.nodes`), path };
  });
  const nodeCount = nodeLists.reduce((n, { nodes }) => n + nodes.length, 0);
  if (nodeCount > limits.maxNodes) {
    doc.fail(
      'graph_module.graph.nodes',
      `has ${nodeCount} nodes (subgraphs included), more than the limit of ${limits.maxNodes}`,
    );
  }

  const histogram = new Map<string, number>();
  for (const { nodes, path } of nodeLists) {
    nodes.forEach((value, i) => {
      const nodePath = `${path}.nodes[${i}]`;
      const node = doc.object(value, nodePath);
      const target = doc.string(own(node, 'target'), `${nodePath}.target`);
      const key = checkOpTarget(target, limits.allowedOpNamespaces, `${doc.entry}: ${nodePath}.target`);
      histogram.set(key, (histogram.get(key) ?? 0) + 1);
      doc.array(own(node, 'inputs'), `${nodePath}.inputs`);
      doc.array(own(node, 'outputs'), `${nodePath}.outputs`);
      checkNodeMetadata(doc, own(node, 'metadata'), `${nodePath}.metadata`);
    });
  }
  for (const { value, location } of scan.operators) {
    checkOpTarget(value, limits.allowedOpNamespaces, `${doc.entry}: ${jsonPath(location)}`);
  }
  const opHistogram = Object.fromEntries([...histogram].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { opHistogram, nodeCount };
}

/**
 * Each module call signature's pytree specs (see treespec.ts), and `forward_arg_names`, which torch turns into
 * the parameter names of the unlifted module's forward.
 */
function checkModuleCallGraph(doc: JsonDoc, entries: Json[]): void {
  entries.forEach((value, i) => {
    const path = `graph_module.module_call_graph[${i}]`;
    const entry = doc.object(value, path);
    const signature = own(entry, 'signature');
    if (signature === null || signature === undefined) return;
    const sig = doc.object(signature, `${path}.signature`);
    checkTreeSpec(doc, doc.string(own(sig, 'in_spec'), `${path}.signature.in_spec`), `${path}.signature.in_spec`);
    checkTreeSpec(doc, doc.string(own(sig, 'out_spec'), `${path}.signature.out_spec`), `${path}.signature.out_spec`);
    const names = own(sig, 'forward_arg_names');
    if (Array.isArray(names)) {
      names.forEach((n, j) => {
        if (typeof n !== 'string' || !PYTHON_IDENTIFIER.test(n) || n.length > 256) {
          doc.fail(`${path}.signature.forward_arg_names[${j}]`, 'must be a Python identifier');
        }
      });
    }
  });
}

const PYTHON_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A dotted Python path without dunder components (`torch.nn.modules.linear.Linear`, `_operator.add`). */
const DOTTED_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * Node metadata torch reads back (`deserialize_metadata`): `source_fn_stack` entries are `name,target` whose
 * target torch resolves by walking attributes from `torch`, `operator` or `math`; a dunder in that walk would
 * reach Python internals. (`custom` and `from_node` are JSON that torch parses as plain data: nothing to check.)
 */
function checkNodeMetadata(doc: JsonDoc, value: Json | undefined, path: string): void {
  if (!isJsonObject(value ?? null)) return;
  const metadata = value as JsonObject;
  const sourceFnStack = own(metadata, 'source_fn_stack');
  if (typeof sourceFnStack === 'string' && sourceFnStack.length > 0) {
    for (const item of sourceFnStack.split(';')) {
      const target = item.slice(item.indexOf(',') + 1);
      const resolved = target.startsWith('torch') || target.startsWith('_operator') || target.startsWith('math');
      if (resolved && (!DOTTED_NAME.test(target) || target.split('.').some((p) => p.startsWith('__')))) {
        doc.fail(`${path}.source_fn_stack`, `names '${excerpt(target, 80)}', which is not a plain dotted name`);
      }
    }
  }
}

function parseRangeConstraints(doc: JsonDoc, value: Json | undefined): Pt2Summary['rangeConstraints'] {
  const ranges: Pt2Summary['rangeConstraints'] = {};
  for (const [symbol, range] of Object.entries(doc.object(value, 'range_constraints'))) {
    // Keys are written with str(): symbol names, or for a derived Dim its expression (`2*s77`, `s77 + 1`).
    // torch looks them up, it does not sympify them; still, anything else means someone edited the file.
    if (!(SYMBOL_NAME.test(symbol) || DERIVED_DIM_KEY.test(symbol)) || symbol.length > 256) {
      throw pt2Error(
        ErrorCode.PT2_BAD_SHAPE_EXPR,
        `${doc.entry}: range_constraints key '${excerpt(symbol, 60)}' is neither a symbol name nor a derived dim's expression`,
        {
          entry: doc.entry,
          path: 'range_constraints',
        },
      );
    }
    const r = doc.object(range, `range_constraints.${symbol}`);
    const [minVal, maxVal] = [own(r, 'min_val'), own(r, 'max_val')];
    // An empty range makes every input size invalid; torch would build the program and fail at the first call.
    if (typeof minVal === 'number' && typeof maxVal === 'number' && minVal > maxVal) {
      doc.fail(`range_constraints.${symbol}`, `is empty (min ${minVal} > max ${maxVal})`);
    }
    ranges[symbol] = {
      min: rangeBound(doc, minVal, `range_constraints.${symbol}.min_val`),
      max: rangeBound(doc, maxVal, `range_constraints.${symbol}.max_val`),
    };
  }
  return ranges;
}

/** null, `inf`-style strings and integers beyond 2^53 (int64 sentinels) all mean "unbounded". */
function rangeBound(doc: JsonDoc, value: Json | undefined, path: string): number | null {
  if (value === null || value === undefined || typeof value === 'string') return null;
  if (typeof value !== 'number' || !Number.isInteger(value))
    doc.fail(path, 'must be an integer, null or an infinity string');
  return Number.isSafeInteger(value) ? value : null;
}

function parseTensorValues(doc: JsonDoc, graph: JsonObject, path: string): Map<string, TensorMetaInfo> {
  const values = new Map<string, TensorMetaInfo>();
  for (const [name, meta] of Object.entries(doc.object(own(graph, 'tensor_values'), `${path}.tensor_values`))) {
    const info = parseTensorMeta(doc, meta, `${path}.tensor_values.${name}`);
    // Sizes, strides and offsets are never negative in a real tensor; torch would build fake tensors from them.
    for (const [field, list] of [
      ['sizes', info.sizes],
      ['strides', info.strides],
      ['storage_offset', [info.storageOffset]],
    ] as const) {
      list.forEach((v, i) => {
        if (v.kind === 'int' && v.value < 0)
          doc.fail(`${path}.tensor_values.${name}.${field}[${i}]`, `is negative (${v.value})`);
      });
    }
    values.set(name, info);
  }
  for (const [name, value] of Object.entries(doc.object(own(graph, 'sym_int_values'), `${path}.sym_int_values`))) {
    parseSymInt(doc, value, `${path}.sym_int_values.${name}`);
  }
  return values;
}

function analyzeSignature(
  doc: JsonDoc,
  inputSpecs: Json[],
  outputSpecs: Json[],
  tensorValues: Map<string, TensorMetaInfo>,
  ranges: Pt2Summary['rangeConstraints'],
  exprs: ShapeExprCache,
): Pick<
  ProgramAnalysis,
  'userInputs' | 'userOutputs' | 'parameters' | 'buffers' | 'constants' | 'weightsState' | 'constantsState'
> {
  const stats = {
    parameter: { tensors: 0, elements: 0, bytes: 0 },
    buffer: { tensors: 0, elements: 0, bytes: 0 },
    constant: { tensors: 0, elements: 0, bytes: 0 },
  };
  const weightsState = new Map<string, StateRef>();
  const constantsState = new Map<string, StateRef>();
  const userInputs: TensorSpec[] = [];
  const userOutputs: TensorSpec[] = [];

  const metaOf = (name: string, path: string): TensorMetaInfo => {
    const meta = tensorValues.get(name);
    if (!meta) doc.fail(path, `refers to tensor '${excerpt(name, 60)}', which graph.tensor_values does not describe`);
    return meta;
  };
  const addState = (role: StateRef['role'], fqn: string, tensorName: string, persistent: boolean, path: string) => {
    const meta = metaOf(tensorName, `${path}.arg.name`);
    const sizes = concreteSizes(doc, meta, `graph_module.graph.tensor_values.${tensorName}`);
    const elements = elementCount(doc, sizes, path);
    if (meta.elementBytes === null) doc.fail(path, 'has dtype UNKNOWN, so its size cannot be known');
    const s = stats[role];
    s.tensors += 1;
    s.elements += elements;
    s.bytes += elements * meta.elementBytes;
    const target = persistent ? weightsState : constantsState;
    if (target.has(fqn)) doc.fail(path, `names '${excerpt(fqn, 60)}' a second time`);
    target.set(fqn, { role, meta, sizes, where: path });
  };
  const tensorSpec = (arg: Json | undefined, path: string): TensorSpec => {
    const { kind, value } = doc.union(arg, path);
    if (kind === 'as_tensor') {
      const name = doc.string(own(doc.object(value, `${path}.as_tensor`), 'name'), `${path}.as_tensor.name`);
      const meta = metaOf(name, `${path}.as_tensor.name`);
      return {
        name,
        dtype: meta.dtype,
        shape: meta.sizes.map((s, i) => dimSpec(doc, s, ranges, exprs, `${path}.sizes[${i}]`)),
      };
    }
    // Non-tensor user values (SymInt, int, None, ...) have no dtype or shape in TensorSpec's terms.
    const named =
      isJsonObject(value) && typeof own(value, 'as_name') === 'string' ? (value.as_name as string) : `<${kind}>`;
    return { name: named, dtype: 'unknown', shape: [] };
  };

  inputSpecs.forEach((specValue, i) => {
    const path = `graph_module.signature.input_specs[${i}]`;
    const { kind, value } = doc.union(specValue, path);
    if (!INPUT_SPEC_KINDS.has(kind)) doc.fail(path, `has unknown input kind '${excerpt(kind, 40)}'`);
    const spec = doc.object(value, `${path}.${kind}`);
    const argName = () =>
      doc.string(own(doc.object(own(spec, 'arg'), `${path}.${kind}.arg`), 'name'), `${path}.${kind}.arg.name`);
    switch (kind) {
      case 'user_input':
        userInputs.push(tensorSpec(own(spec, 'arg'), `${path}.user_input.arg`));
        break;
      case 'parameter':
        addState(
          'parameter',
          doc.string(own(spec, 'parameter_name'), `${path}.parameter.parameter_name`),
          argName(),
          true,
          path,
        );
        break;
      case 'buffer': {
        // Non-persistent buffers are not in the state dict; torch saves them with the constants.
        const persistent = doc.bool(own(spec, 'persistent'), `${path}.buffer.persistent`);
        addState(
          'buffer',
          doc.string(own(spec, 'buffer_name'), `${path}.buffer.buffer_name`),
          argName(),
          persistent,
          path,
        );
        break;
      }
      case 'tensor_constant':
        addState(
          'constant',
          doc.string(own(spec, 'tensor_constant_name'), `${path}.tensor_constant.tensor_constant_name`),
          argName(),
          false,
          path,
        );
        break;
    }
  });
  outputSpecs.forEach((specValue, i) => {
    const path = `graph_module.signature.output_specs[${i}]`;
    const { kind, value } = doc.union(specValue, path);
    if (!OUTPUT_SPEC_KINDS.has(kind)) doc.fail(path, `has unknown output kind '${excerpt(kind, 40)}'`);
    if (kind === 'user_output') {
      userOutputs.push(tensorSpec(own(doc.object(value, `${path}.user_output`), 'arg'), `${path}.user_output.arg`));
    }
  });

  return {
    userInputs,
    userOutputs,
    parameters: stats.parameter,
    buffers: stats.buffer,
    constants: stats.constant,
    weightsState,
    constantsState,
  };
}

function dimSpec(
  doc: JsonDoc,
  size: SymIntValue,
  ranges: Pt2Summary['rangeConstraints'],
  exprs: ShapeExprCache,
  path: string,
): DimSpec {
  if (size.kind === 'int') return { kind: 'static', size: size.value };
  const parsed = exprs.parse(size.exprStr, doc.entry, path);
  // A range is only exact for a bare symbol; for `2*s77 + 1` callers can derive it from `symbols`.
  const range =
    parsed.node.type === 'symbol' && Object.hasOwn(ranges, parsed.node.name) ? ranges[parsed.node.name] : undefined;
  return {
    kind: 'dynamic',
    expr: parsed.text,
    symbols: [...parsed.symbols],
    min: range?.min ?? null,
    max: range?.max ?? null,
    hint: size.hint,
  };
}
