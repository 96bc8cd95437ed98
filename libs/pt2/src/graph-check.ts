import { ErrorCode, type KilnError } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';
import { isJsonObject, type Json, type JsonObject } from './json-doc.js';
import { own } from './tensor-meta.js';

/**
 * Well-formedness of a program's graphs (run after the schema check, so every object has its schema shape):
 *
 *  - every value a node, a graph output or the signature refers to is defined exactly once, before its first
 *    use: by a graph input, or by the output of an earlier node. Definition before use in list order is also
 *    what makes the graph acyclic: a cycle needs some node to read a value a later node defines;
 *  - no node reads its own output, no two nodes (or a node and an input) define one name;
 *  - each value has the metadata of its kind (tensor_values, sym_int_values, sym_bool_values, sym_float_values)
 *    and is used as the kind it was defined as;
 *  - names are Python identifiers (torch turns them into FX node names and generated Python code);
 *  - the signature's input specs are the graph inputs and its output specs the graph outputs, one for one, in
 *    order (the summary and the compile driver read inputs and outputs from the signature);
 *  - the same for every subgraph of a higher-order op (cond branches, while_loop/map/scan bodies ...), each in
 *    its own scope: a subgraph sees only its own inputs, never the values of the graph around it.
 *
 * torch's deserializer assumes all of this (a forward reference is a KeyError deep inside it, a duplicate name
 * silently rebinds a value); Kiln refuses such programs with PT2_MALFORMED_GRAPH before torch sees them.
 */

type ValueKind = 'tensor' | 'sym_int' | 'sym_bool' | 'sym_float' | 'custom_obj';

interface ValueRef {
  name: string;
  kind: ValueKind;
}

const VALUE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_VALUE_NAME = 256;

const META_TABLE: Record<Exclude<ValueKind, 'custom_obj'>, string> = {
  tensor: 'tensor_values',
  sym_int: 'sym_int_values',
  sym_bool: 'sym_bool_values',
  sym_float: 'sym_float_values',
};

function malformed(entry: string, path: string, problem: string): KilnError {
  return pt2Error(ErrorCode.PT2_MALFORMED_GRAPH, `${entry}: ${path} ${problem}`, { entry, path });
}

/** The values an Argument refers to (or, for node outputs and graph inputs, defines), and its subgraphs. */
function argumentRefs(arg: Json, refs: ValueRef[], subgraphs: { name: string; graph: JsonObject }[]): void {
  if (!isJsonObject(arg)) return;
  const [kind] = Object.keys(arg);
  const value = arg[kind];
  const symbolic = (v: Json, valueKind: ValueKind) => {
    if (isJsonObject(v) && typeof own(v, 'as_name') === 'string')
      refs.push({ name: v.as_name as string, kind: valueKind });
  };
  const optionalTensor = (v: Json) => {
    if (isJsonObject(v) && isJsonObject(own(v, 'as_tensor') ?? null)) {
      refs.push({ name: (v.as_tensor as JsonObject).name as string, kind: 'tensor' });
    }
  };
  const list = (v: Json): Json[] => (Array.isArray(v) ? v : []);
  switch (kind) {
    case 'as_tensor':
      refs.push({ name: (value as JsonObject).name as string, kind: 'tensor' });
      break;
    case 'as_tensors':
      for (const t of list(value)) refs.push({ name: (t as JsonObject).name as string, kind: 'tensor' });
      break;
    case 'as_nested_tensors':
      for (const inner of list(value)) {
        for (const t of list(inner)) refs.push({ name: (t as JsonObject).name as string, kind: 'tensor' });
      }
      break;
    case 'as_optional_tensor':
      optionalTensor(value);
      break;
    case 'as_optional_tensors':
      list(value).forEach(optionalTensor);
      break;
    case 'as_sym_int':
      symbolic(value, 'sym_int');
      break;
    case 'as_sym_ints':
      list(value).forEach((v) => symbolic(v, 'sym_int'));
      break;
    case 'as_sym_bool':
      symbolic(value, 'sym_bool');
      break;
    case 'as_sym_bools':
      list(value).forEach((v) => symbolic(v, 'sym_bool'));
      break;
    case 'as_sym_float':
      symbolic(value, 'sym_float');
      break;
    case 'as_sym_floats':
      list(value).forEach((v) => symbolic(v, 'sym_float'));
      break;
    case 'as_custom_obj':
      refs.push({ name: (value as JsonObject).name as string, kind: 'custom_obj' });
      break;
    case 'as_string_to_argument':
      if (isJsonObject(value)) for (const inner of Object.values(value)) argumentRefs(inner, refs, subgraphs);
      break;
    case 'as_graph': {
      const graphArg = value as JsonObject;
      subgraphs.push({ name: graphArg.name as string, graph: graphArg.graph as JsonObject });
      break;
    }
  }
}

/** The one name a signature spec's argument or a graph input/output carries, or null for a constant. */
function nameOf(arg: Json | undefined): string | null {
  const refs: ValueRef[] = [];
  argumentRefs(arg ?? null, refs, []);
  return refs.length === 1 ? refs[0].name : refs.length === 0 ? null : refs.map((r) => r.name).join(',');
}

export function checkGraphWellFormed(entry: string, program: JsonObject): void {
  const graphModule = program.graph_module as JsonObject;
  const graph = graphModule.graph as JsonObject;
  checkGraph(entry, graph, 'graph_module.graph');
  checkSignature(entry, graph, graphModule.signature as JsonObject);
}

function checkName(entry: string, path: string, name: string): void {
  if (name.length > MAX_VALUE_NAME || !VALUE_NAME.test(name)) {
    throw malformed(entry, path, `names a value '${excerpt(name, 60)}', which is not a Python identifier`);
  }
}

function checkGraph(entry: string, graph: JsonObject, path: string): void {
  /** name → where it is defined and as what. */
  const defined = new Map<string, { kind: ValueKind; where: string }>();
  const nodes = graph.nodes as JsonObject[];
  // Where each name is (first) defined by a node, to tell "defined later" (a cycle) from "never defined".
  const definedLater = new Map<string, number>();
  nodes.forEach((node, i) => {
    const outs: ValueRef[] = [];
    for (const out of node.outputs as Json[]) argumentRefs(out, outs, []);
    for (const ref of outs) if (!definedLater.has(ref.name)) definedLater.set(ref.name, i);
  });

  const define = (ref: ValueRef, where: string) => {
    checkName(entry, where, ref.name);
    const before = defined.get(ref.name);
    if (before) throw malformed(entry, where, `defines '${ref.name}', which ${before.where} already defines`);
    if (ref.kind !== 'custom_obj') {
      const table = own(graph, META_TABLE[ref.kind]);
      if (!isJsonObject(table ?? null) || !Object.hasOwn(table as JsonObject, ref.name)) {
        throw malformed(
          entry,
          where,
          `defines the ${ref.kind} '${ref.name}', which ${path}.${META_TABLE[ref.kind]} does not describe`,
        );
      }
    }
    defined.set(ref.name, { kind: ref.kind, where });
  };
  const use = (ref: ValueRef, where: string) => {
    checkName(entry, where, ref.name);
    const def = defined.get(ref.name);
    if (!def) {
      const later = definedLater.get(ref.name);
      throw malformed(
        entry,
        where,
        later === undefined
          ? `reads '${ref.name}', which nothing in the graph defines`
          : `reads '${ref.name}' before ${path}.nodes[${later}] defines it (values must be defined before use; a graph with a cycle cannot be ordered so)`,
      );
    }
    if (def.kind !== ref.kind) {
      throw malformed(
        entry,
        where,
        `reads '${ref.name}' as a ${ref.kind}, but ${def.where} defines it as a ${def.kind}`,
      );
    }
  };

  (graph.inputs as Json[]).forEach((input, i) => {
    const refs: ValueRef[] = [];
    argumentRefs(input, refs, []);
    for (const ref of refs) define(ref, `${path}.inputs[${i}]`);
  });

  nodes.forEach((node, i) => {
    const nodePath = `${path}.nodes[${i}]`;
    const name = own(node, 'name');
    if (typeof name === 'string') checkName(entry, `${nodePath}.name`, name);
    const reads: ValueRef[] = [];
    const subgraphs: { name: string; graph: JsonObject }[] = [];
    (node.inputs as JsonObject[]).forEach((input) => argumentRefs(input.arg, reads, subgraphs));
    const writes: ValueRef[] = [];
    for (const out of node.outputs as Json[]) argumentRefs(out, writes, []);
    const readNames = new Set(reads.map((r) => r.name));
    for (const w of writes) {
      if (readNames.has(w.name)) throw malformed(entry, nodePath, `reads its own output '${w.name}'`);
    }
    for (const r of reads) use(r, `${nodePath}.inputs`);
    const subgraphNames = new Set<string>();
    subgraphs.forEach((sub) => {
      checkName(entry, `${nodePath}.inputs`, sub.name);
      if (subgraphNames.has(sub.name)) throw malformed(entry, nodePath, `passes two subgraphs named '${sub.name}'`);
      subgraphNames.add(sub.name);
      checkGraph(entry, sub.graph, `${nodePath}.inputs.${sub.name}`);
    });
    for (const w of writes) define(w, `${nodePath}.outputs`);
  });

  (graph.outputs as Json[]).forEach((output, i) => {
    const refs: ValueRef[] = [];
    argumentRefs(output, refs, []);
    for (const ref of refs) use(ref, `${path}.outputs[${i}]`);
  });
}

/** The signature's specs describe the top graph's inputs and outputs, one for one and in order. */
function checkSignature(entry: string, graph: JsonObject, signature: JsonObject): void {
  const inputs = graph.inputs as Json[];
  const outputs = graph.outputs as Json[];
  const inputSpecs = signature.input_specs as JsonObject[];
  const outputSpecs = signature.output_specs as JsonObject[];
  const specName = (spec: JsonObject): string | null => {
    const [kind] = Object.keys(spec);
    const body = spec[kind] as JsonObject;
    if (kind === 'user_input' || kind === 'user_output') return nameOf(body.arg);
    if (kind === 'constant_input') return null;
    const arg = own(body, 'arg');
    return isJsonObject(arg ?? null) && typeof (arg as JsonObject).name === 'string'
      ? ((arg as JsonObject).name as string)
      : null;
  };
  if (inputSpecs.length !== inputs.length) {
    throw malformed(
      entry,
      'graph_module.signature.input_specs',
      `lists ${inputSpecs.length} inputs but the graph has ${inputs.length}`,
    );
  }
  inputSpecs.forEach((spec, i) => {
    const expected = nameOf(inputs[i]);
    const actual = specName(spec);
    if (actual !== expected) {
      throw malformed(
        entry,
        `graph_module.signature.input_specs[${i}]`,
        `names '${excerpt(String(actual), 60)}' but graph input ${i} is '${excerpt(String(expected), 60)}'`,
      );
    }
  });
  if (outputSpecs.length !== outputs.length) {
    throw malformed(
      entry,
      'graph_module.signature.output_specs',
      `lists ${outputSpecs.length} outputs but the graph has ${outputs.length}`,
    );
  }
  outputSpecs.forEach((spec, i) => {
    const expected = nameOf(outputs[i]);
    const actual = specName(spec);
    if (actual !== expected) {
      throw malformed(
        entry,
        `graph_module.signature.output_specs[${i}]`,
        `names '${excerpt(String(actual), 60)}' but graph output ${i} is '${excerpt(String(expected), 60)}'`,
      );
    }
  });
}
