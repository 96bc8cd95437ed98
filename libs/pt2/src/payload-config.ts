import { ErrorCode } from '@kiln/contracts';
import { PAYLOAD_FILE_NAME, PT2_PATHS } from './archive-layout.js';
import { excerpt, pt2Error } from './errors.js';
import { checkExportSchema } from './export-schema.js';
import type { ShapeExprCache } from './expr-cache.js';
import { JsonDoc, jsonPath, walkJson } from './json-doc.js';
import type { Pt2Limits } from './limits.js';
import type { StateRef } from './program.js';
import { concreteSizes, own, parseTensorMeta, type TensorMetaInfo } from './tensor-meta.js';
import type { ArchiveEntry } from './zip-archive.js';

export type PayloadKind = 'weights' | 'constants';

/** File name prefixes torch gives pickled constants (`torch/export/pt2_archive/constants.py`). */
const CUSTOM_OBJ_PREFIX = 'custom_obj_';
const OPAQUE_OBJ_PREFIX = 'opaque_obj_';
/** torch's loader refuses constants whose file name has no known prefix. */
const TENSOR_CONSTANT_PREFIX = 'tensor_';

export interface PayloadConfigAnalysis {
  /** FQN → the payload's metadata as stored. */
  tensors: Map<string, { meta: TensorMetaInfo; sizes: number[]; file: string }>;
  /** Payload file names (`weight_0`) the config points at; the only payload files allowed. */
  referencedFiles: Set<string>;
}

/**
 * Validates `data/weights/<model>_weights_config.json` or `data/constants/<model>_constants_config.json`:
 * a map FQN → {path_name, is_param, use_pickle, tensor_meta}. Every entry must be a raw tensor (never a
 * pickle or custom object) whose file exists and is large enough for its sizes, strides and offset.
 */
export function analyzePayloadConfig(
  kind: PayloadKind,
  entry: string,
  bytes: Buffer,
  files: ReadonlyMap<string, ArchiveEntry>,
  limits: Pt2Limits,
  exprs: ShapeExprCache,
): PayloadConfigAnalysis {
  const parsed = JsonDoc.parse(entry, bytes);
  // Annotated so that doc.fail() (returns never) narrows types below.
  const doc: JsonDoc = parsed.doc;
  const root = parsed.root;
  walkJson(doc, root, limits.maxJsonDepth, (key, value, location) => {
    if (key !== 'expr_str') return;
    if (typeof value !== 'string') doc.string(value, jsonPath(location));
    exprs.parse(value as string, entry, () => jsonPath(location));
  });
  checkExportSchema(doc, root, 'PayloadConfig');
  const config = doc.object(own(doc.object(root, ''), 'config'), 'config');
  const dir = kind === 'weights' ? PT2_PATHS.weightsDir : PT2_PATHS.constantsDir;
  const analysis: PayloadConfigAnalysis = { tensors: new Map(), referencedFiles: new Set() };

  for (const [fqn, value] of Object.entries(config)) {
    const path = `config.${fqn}`;
    const payload = doc.object(value, path);
    const file = doc.string(own(payload, 'path_name'), `${path}.path_name`);
    const usePickle = doc.bool(own(payload, 'use_pickle'), `${path}.use_pickle`);
    doc.bool(own(payload, 'is_param'), `${path}.is_param`);
    const metaValue = own(payload, 'tensor_meta');

    // Custom (torchbind) and opaque objects are stored as pickles with no tensor_meta.
    if (
      kind === 'constants' &&
      (file.startsWith(CUSTOM_OBJ_PREFIX) || file.startsWith(OPAQUE_OBJ_PREFIX) || metaValue === null)
    ) {
      throw pt2Error(
        ErrorCode.PT2_CUSTOM_OBJECT,
        `${entry}: constant '${excerpt(fqn, 80)}' (${excerpt(file, 60)}) is a custom or opaque object, which torch.export.load unpickles; Kiln accepts tensor constants only`,
        { entry, fqn: excerpt(fqn, 200), file: excerpt(file, 100) },
      );
    }
    if (usePickle) {
      throw pt2Error(
        ErrorCode.PT2_PICKLED_DATA,
        `${entry}: ${kind === 'weights' ? 'weight' : 'constant'} '${excerpt(fqn, 80)}' (${dir}${excerpt(file, 60)}) is stored as a pickle (use_pickle: true), which torch.export.load unpickles; Kiln accepts raw tensors only (tensor subclasses are saved as pickles: convert them to plain tensors before export)`,
        { entry, fqn: excerpt(fqn, 200), file: excerpt(file, 100) },
      );
    }
    if (!PAYLOAD_FILE_NAME.test(file)) doc.fail(`${path}.path_name`, `'${excerpt(file, 60)}' is not a plain file name`);
    if (kind === 'constants' && !file.startsWith(TENSOR_CONSTANT_PREFIX)) {
      doc.fail(
        `${path}.path_name`,
        `'${excerpt(file, 60)}' must start with '${TENSOR_CONSTANT_PREFIX}' (torch refuses other constant files)`,
      );
    }
    const payloadEntry = files.get(file);
    if (!payloadEntry)
      doc.fail(`${path}.path_name`, `points at ${dir}${excerpt(file, 60)}, which is not in the archive`);
    if (metaValue === null || metaValue === undefined)
      doc.fail(`${path}.tensor_meta`, 'is missing; a raw tensor needs it');

    const meta = parseTensorMeta(doc, metaValue, `${path}.tensor_meta`);
    const sizes = concreteSizes(doc, meta, `${path}.tensor_meta`);
    checkPayloadSize(doc, `${path}.tensor_meta`, meta, sizes, payloadEntry);
    analysis.tensors.set(fqn, { meta, sizes, file });
    analysis.referencedFiles.add(file);
  }
  return analysis;
}

/**
 * The file holds the tensor's whole storage (tied weights share one file, each FQN a view into it), so
 * it must reach the view's last element: (offset + Σ (size-1)·stride + 1) · element size. torch also
 * refuses files whose size is not a multiple of the element size.
 */
function checkPayloadSize(doc: JsonDoc, path: string, meta: TensorMetaInfo, sizes: number[], file: ArchiveEntry): void {
  if (meta.elementBytes === null) return doc.fail(`${path}.dtype`, 'is UNKNOWN; a stored tensor needs a real dtype');
  const strides = meta.strides.map((s, i) => {
    if (s.kind !== 'int' || s.value < 0) return doc.fail(`${path}.strides[${i}]`, 'must be a non-negative integer');
    return BigInt(s.value);
  });
  if (meta.storageOffset.kind !== 'int' || meta.storageOffset.value < 0) {
    return doc.fail(`${path}.storage_offset`, 'must be a non-negative integer');
  }
  const elementBytes = BigInt(meta.elementBytes);
  let needed = 0n;
  if (!sizes.includes(0)) {
    let lastElement = BigInt(meta.storageOffset.value);
    sizes.forEach((size, i) => (lastElement += BigInt(size - 1) * strides[i]));
    needed = (lastElement + 1n) * elementBytes;
  }
  const actual = BigInt(file.size);
  if (actual < needed) {
    doc.fail(
      path,
      `describes ${needed} bytes of data but ${file.path} holds ${actual}${actual === 0n ? ' (a program saved with fake weights?)' : ''}`,
    );
  }
  if (actual % elementBytes !== 0n) {
    doc.fail(path, `${file.path} holds ${actual} bytes, not a multiple of the ${elementBytes}-byte element size`);
  }
}

/** The program's parameters/buffers/constants must all be in the config, with the same dtype and sizes. */
export function checkStateAgainstConfig(
  kind: PayloadKind,
  entry: string,
  state: ReadonlyMap<string, StateRef>,
  config: PayloadConfigAnalysis,
): void {
  // And the other way round: a config entry no parameter, buffer or constant of the program names would be
  // loaded into the state dict unvalidated against the graph.
  for (const fqn of config.tensors.keys()) {
    if (!state.has(fqn)) {
      throw pt2Error(
        ErrorCode.PT2_MALFORMED_PROGRAM,
        `${entry}: '${excerpt(fqn, 80)}' is not a ${kind === 'weights' ? 'parameter or persistent buffer' : 'constant or non-persistent buffer'} of the program`,
        { entry, fqn: excerpt(fqn, 200) },
      );
    }
  }
  for (const [fqn, ref] of state) {
    const stored = config.tensors.get(fqn);
    const fail = (problem: string): never => {
      throw pt2Error(
        ErrorCode.PT2_MALFORMED_PROGRAM,
        `${entry}: ${ref.role} '${excerpt(fqn, 80)}' (${ref.where}) ${problem}`,
        {
          entry,
          fqn: excerpt(fqn, 200),
        },
      );
    };
    if (!stored) fail(`is missing from the ${kind} config`);
    else if (stored.meta.dtypeCode !== ref.meta.dtypeCode)
      fail(`is ${stored.meta.dtype} in the config but ${ref.meta.dtype} in the graph`);
    else if (stored.sizes.join(',') !== ref.sizes.join(',')) {
      fail(`has sizes [${stored.sizes.join(', ')}] in the config but [${ref.sizes.join(', ')}] in the graph`);
    }
  }
}
