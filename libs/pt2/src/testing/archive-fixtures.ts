/**
 * Test support: real fixture archives (from test/fixtures/make_models.py) and tools to rewrite them
 * into the hostile archives the rejection tests need. Never imported by the library itself.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yauzl from 'yauzl';
import yazl from 'yazl';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

/** Where make_models.py wrote the fixtures; CI generates them before the tests run. */
export const FIXTURES_DIR = process.env.KILN_FIXTURES_DIR ?? resolve(REPO_ROOT, '.kiln/fixtures');

export type FixtureName = 'mlp' | 'cnn' | 'transformer' | 'pair';

export function fixturePath(name: FixtureName): string {
  return resolve(FIXTURES_DIR, `${name}.pt2`);
}

export async function loadFixture(name: FixtureName): Promise<Buffer> {
  return readFile(fixturePath(name));
}

export interface ZipFileSpec {
  /** Full entry name, top folder included. */
  name: string;
  data: Buffer;
  compress?: boolean;
  /** Unix mode bits, e.g. 0o120777 for a symlink. */
  mode?: number;
}

/** All entries of a zip, in central-directory order. */
export async function unzip(archive: Buffer): Promise<ZipFileSpec[]> {
  const zip = await yauzl.fromBufferPromise(archive, { lazyEntries: true, strictFileNames: true });
  const files: ZipFileSpec[] = [];
  for await (const entry of zip.eachEntry()) {
    const stream = await zip.openReadStreamPromise(entry);
    const chunks: Buffer[] = [];
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    files.push({ name: entry.fileName, data: Buffer.concat(chunks) });
  }
  return files;
}

/** Writes entries stored (uncompressed, like torch) unless an entry asks for compression. */
export async function zip(files: readonly ZipFileSpec[], options: { zip64?: boolean } = {}): Promise<Buffer> {
  const out = new yazl.ZipFile();
  for (const file of files) {
    out.addBuffer(file.data, file.name, {
      compress: file.compress ?? false,
      forceZip64Format: options.zip64 ?? false,
      // torch writes no timestamp extra field (yazl's default 'UT' field is one the validator refuses).
      forceDosTimestamp: true,
      ...(file.mode !== undefined ? { mode: file.mode } : {}),
    });
  }
  out.end({ forceZip64Format: options.zip64 ?? false, comment: '' });
  const chunks: Buffer[] = [];
  for await (const chunk of out.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The parts of a serialized ExportedProgram (schema.py) the tests edit. */
export interface SymIntJson {
  as_int?: number;
  as_expr?: { expr_str: string; hint?: { as_int: number } | null };
}

/** An Argument of the export schema: a single-key union (`{ as_tensor: { name } }`, `{ as_int: 3 }`, ...). */
export type ArgumentJson = Record<string, unknown>;

export interface NodeJson {
  target: string;
  name?: string | null;
  inputs: { name: string; arg: ArgumentJson; kind: number | null }[];
  outputs: ArgumentJson[];
  metadata: Record<string, string>;
  is_hop_single_tensor_return?: boolean | null;
}

export interface TensorMetaJson {
  dtype: number;
  sizes: SymIntJson[];
  strides: SymIntJson[];
  storage_offset: SymIntJson;
  requires_grad: boolean;
  device: { type: string; index?: number | null };
  layout: number;
}

export interface GraphJson {
  inputs: ArgumentJson[];
  outputs: ArgumentJson[];
  nodes: NodeJson[];
  tensor_values: Record<string, TensorMetaJson>;
  sym_int_values: Record<string, SymIntJson>;
  sym_bool_values: Record<string, unknown>;
  sym_float_values?: Record<string, unknown>;
  custom_obj_values: Record<string, unknown>;
  is_single_tensor_return?: boolean;
}

export interface ProgramJson {
  schema_version: { major: number; minor: number };
  guards_code: string[];
  range_constraints: Record<string, { min_val: number | string | null; max_val: number | string | null }>;
  graph_module: {
    graph: GraphJson;
    signature: { input_specs: Record<string, unknown>[]; output_specs: Record<string, unknown>[] };
    module_call_graph: {
      fqn: string;
      signature: {
        inputs: ArgumentJson[];
        outputs: ArgumentJson[];
        in_spec: string;
        out_spec: string;
        forward_arg_names?: string[] | null;
      } | null;
    }[];
    metadata: Record<string, string>;
  };
}

export interface PayloadMetaJson {
  path_name: string;
  is_param: boolean;
  use_pickle: boolean;
  tensor_meta: TensorMetaJson | null;
}

export interface PayloadConfigJson {
  config: Record<string, PayloadMetaJson>;
}

/** The archive's files keyed by path below the top folder, for editing. */
export class Pt2Files {
  constructor(
    public root: string,
    readonly files: Map<string, Buffer>,
  ) {}

  static async from(archive: Buffer): Promise<Pt2Files> {
    const entries = await unzip(archive);
    const root = entries[0].name.split('/')[0];
    return new Pt2Files(root, new Map(entries.map((e) => [e.name.slice(root.length + 1), e.data])));
  }

  get(path: string): Buffer {
    const data = this.files.get(path);
    if (!data) throw new Error(`fixture has no ${path}`);
    return data;
  }

  json<T>(path: string): T {
    return JSON.parse(this.get(path).toString('utf8')) as T;
  }

  /** Edits a JSON entry in place; the callback mutates the parsed document. */
  editJson<T>(path: string, edit: (doc: T) => void): this {
    const doc = this.json<T>(path);
    edit(doc);
    this.files.set(path, Buffer.from(JSON.stringify(doc)));
    return this;
  }

  editProgram(edit: (program: ProgramJson) => void): this {
    return this.editJson('models/model.json', edit);
  }

  editPayloadConfig(kind: 'weights' | 'constants', edit: (config: PayloadConfigJson) => void): this {
    return this.editJson(`data/${kind}/model_${kind}_config.json`, edit);
  }

  set(path: string, data: Buffer | string): this {
    this.files.set(path, Buffer.isBuffer(data) ? data : Buffer.from(data));
    return this;
  }

  delete(path: string): this {
    this.files.delete(path);
    return this;
  }

  /** Re-zips; `extra` adds raw entries (full names) and per-entry options. */
  async build(
    options: { order?: 'original' | 'reversed'; compress?: string[]; extra?: ZipFileSpec[]; zip64?: boolean } = {},
  ): Promise<Buffer> {
    let entries: ZipFileSpec[] = [...this.files].map(([path, data]) => ({
      name: `${this.root}/${path}`,
      data,
      compress: options.compress?.includes(path),
    }));
    if (options.order === 'reversed') entries = entries.reverse();
    return zip([...entries, ...(options.extra ?? [])], { zip64: options.zip64 });
  }
}

/**
 * Puts bytes before a (non-zip64) archive and fixes every offset, so the result is a consistent zip
 * whose first entry does not start at 0 — the shape of a polyglot file.
 */
export function prependConsistently(archive: Buffer, prefix: Buffer): Buffer {
  const out = Buffer.concat([prefix, archive]);
  const end = out.length - 22;
  if (out.readUInt32LE(end) !== 0x06054b50) throw new Error('expected an end record without comment');
  const count = out.readUInt16LE(end + 10);
  const directory = out.readUInt32LE(end + 16) + prefix.length;
  out.writeUInt32LE(directory, end + 16);
  let at = directory;
  for (let i = 0; i < count; i++) {
    out.writeUInt32LE(out.readUInt32LE(at + 42) + prefix.length, at + 42);
    at += 46 + out.readUInt16LE(at + 28) + out.readUInt16LE(at + 30) + out.readUInt16LE(at + 32);
  }
  return out;
}

/** Replaces every occurrence of a byte string with another of the same length (names yazl refuses). */
export function patchBytes(archive: Buffer, from: string | Buffer, to: string | Buffer): Buffer {
  const a = Buffer.isBuffer(from) ? from : Buffer.from(from);
  const b = Buffer.isBuffer(to) ? to : Buffer.from(to);
  if (a.length !== b.length) throw new Error('patchBytes needs equal lengths');
  const out = Buffer.from(archive);
  let found = 0;
  for (let i = out.indexOf(a); i >= 0; i = out.indexOf(a, i + a.length)) {
    b.copy(out, i);
    found++;
  }
  if (found === 0) throw new Error(`patchBytes: ${a.toString('latin1')} not found`);
  return out;
}
