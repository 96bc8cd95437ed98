import { ErrorCode } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';
import type { ArchiveEntry } from './zip-archive.js';

/**
 * Where each entry of a torch.export.save archive lives (paths below the top folder), from
 * torch/csrc/export/pt2_archive_constants.h. Anything else is refused: an allowlist fails closed when
 * a future torch adds an entry kind we have not looked at.
 */
export const PT2_PATHS = {
  archiveFormat: 'archive_format',
  archiveVersion: 'archive_version',
  byteorder: 'byteorder',
  dataVersion: '.data/version',
  model: (name: string) => `models/${name}.json`,
  weightsConfig: (name: string) => `data/weights/${name}_weights_config.json`,
  constantsConfig: (name: string) => `data/constants/${name}_constants_config.json`,
  sampleInputs: (name: string) => `data/sample_inputs/${name}.pt`,
  weightsDir: 'data/weights/',
  constantsDir: 'data/constants/',
} as const;

/** Written by torch's zip writer itself; random per save, never read by Kiln. */
const SERIALIZATION_ID = '.data/serialization_id';

/** Model names become file names; export uses `model`. */
const MODEL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Payload file names (`weight_0`, `tensor_3`): flat, no path tricks. */
export const PAYLOAD_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
/** File name suffixes that mean "pickle" to torch (legacy `data/weights/<model>.pt` is torch.load-ed). */
const PICKLE_SUFFIX = /\.(pt|pth|pkl|pickle)$/i;

export interface Pt2Layout {
  archiveFormat: ArchiveEntry | undefined;
  archiveVersion: ArchiveEntry | undefined;
  byteorder: ArchiveEntry | undefined;
  /** The zip container's version, which torch's reader requires (not the schema version). */
  dataVersion: ArchiveEntry | undefined;
  /** Random per save; torch's reader loads it whole when it opens the archive. */
  serializationId: ArchiveEntry | undefined;
  /** Model name → its program JSON. */
  models: Map<string, ArchiveEntry>;
  weightsConfigs: Map<string, ArchiveEntry>;
  constantsConfigs: Map<string, ArchiveEntry>;
  /** Raw tensor payloads by file name (`weight_0`), as weight/constant configs refer to them. */
  weightFiles: Map<string, ArchiveEntry>;
  constantFiles: Map<string, ArchiveEntry>;
  sampleInputs: Map<string, ArchiveEntry>;
  extras: ArchiveEntry[];
  /** Entries that must make the upload fail, with why; reported after the format checks. */
  refused: {
    entry: ArchiveEntry;
    code: typeof ErrorCode.PT2_BAD_ENTRY_NAME | typeof ErrorCode.PT2_PICKLED_DATA;
    why: string;
  }[];
}

export function classifyEntries(entries: Iterable<ArchiveEntry>): Pt2Layout {
  const layout: Pt2Layout = {
    archiveFormat: undefined,
    archiveVersion: undefined,
    byteorder: undefined,
    dataVersion: undefined,
    serializationId: undefined,
    models: new Map(),
    weightsConfigs: new Map(),
    constantsConfigs: new Map(),
    weightFiles: new Map(),
    constantFiles: new Map(),
    sampleInputs: new Map(),
    extras: [],
    refused: [],
  };
  const refuse = (entry: ArchiveEntry, why: string) =>
    layout.refused.push({ entry, code: ErrorCode.PT2_BAD_ENTRY_NAME, why });
  const pickled = (entry: ArchiveEntry, why: string) =>
    layout.refused.push({ entry, code: ErrorCode.PT2_PICKLED_DATA, why });

  for (const entry of entries) {
    const { path } = entry;
    if (path === PT2_PATHS.archiveFormat) layout.archiveFormat = entry;
    else if (path === PT2_PATHS.archiveVersion) layout.archiveVersion = entry;
    else if (path === PT2_PATHS.byteorder) layout.byteorder = entry;
    else if (path === PT2_PATHS.dataVersion) layout.dataVersion = entry;
    else if (path === SERIALIZATION_ID) layout.serializationId = entry;
    else if (path.startsWith('models/')) {
      const match = /^models\/([^/]+)\.json$/.exec(path);
      if (match && MODEL_NAME.test(match[1])) layout.models.set(match[1], entry);
      else refuse(entry, 'is not a valid models/<name>.json path');
    } else if (path.startsWith(PT2_PATHS.weightsDir) || path.startsWith(PT2_PATHS.constantsDir)) {
      const isWeights = path.startsWith(PT2_PATHS.weightsDir);
      const file = path.slice((isWeights ? PT2_PATHS.weightsDir : PT2_PATHS.constantsDir).length);
      const config = (isWeights ? /^(.+)_weights_config\.json$/ : /^(.+)_constants_config\.json$/).exec(file);
      if (file.includes('/') || !PAYLOAD_FILE_NAME.test(file)) refuse(entry, 'is not a flat payload file name');
      else if (config) (isWeights ? layout.weightsConfigs : layout.constantsConfigs).set(config[1], entry);
      // torch.load()s a legacy `data/weights/<model>.pt` / `data/constants/<model>.pt` whatever the configs say.
      else if (PICKLE_SUFFIX.test(file)) pickled(entry, 'is a pickle file (legacy torch.save weights format)');
      else (isWeights ? layout.weightFiles : layout.constantFiles).set(file, entry);
    } else if (path.startsWith('data/sample_inputs/')) {
      // Sample inputs are torch.save pickles by design. Kiln never unpickles them: the compile driver
      // replaces them before torch.export.load, so they are allowed but never read or hashed here.
      const file = path.slice('data/sample_inputs/'.length);
      if (file.includes('/')) refuse(entry, 'is nested below data/sample_inputs/');
      else layout.sampleInputs.set(file, entry);
    } else if (path.startsWith('extra/')) {
      if (PICKLE_SUFFIX.test(path)) pickled(entry, 'is a pickle file');
      else layout.extras.push(entry);
    } else if (path.startsWith('data/aotinductor/')) {
      refuse(
        entry,
        'is part of an AOTInductor package: its .so is native code that torch.export.load would load; upload the ExportedProgram saved by torch.export.save instead',
      );
    } else {
      refuse(entry, 'is not an entry torch.export.save writes');
    }
  }
  return layout;
}

/** Throws the first refusal found by classifyEntries, if any. */
export function rejectRefusedEntries(layout: Pt2Layout): void {
  const first = layout.refused[0];
  if (!first) return;
  const more = layout.refused.length > 1 ? ` (and ${layout.refused.length - 1} more)` : '';
  throw pt2Error(first.code, `entry '${excerpt(first.entry.path)}' ${first.why}${more}`, {
    entry: excerpt(first.entry.path, 300),
    refused: layout.refused.slice(0, 20).map((r) => excerpt(r.entry.path, 200)),
  });
}

/** Exactly one program per upload, with its configs and sample inputs; returns its name. */
export function requireSingleModel(layout: Pt2Layout): string {
  const names = [...layout.models.keys()];
  if (names.length === 0) {
    throw pt2Error(ErrorCode.PT2_MISSING_ENTRY, `archive has no program: expected ${PT2_PATHS.model('model')}`, {
      entry: PT2_PATHS.model('model'),
    });
  }
  if (names.length > 1) {
    throw pt2Error(
      ErrorCode.PT2_MULTIPLE_MODELS,
      `archive holds ${names.length} programs (${names.map((n) => excerpt(n, 40)).join(', ')}); Kiln compiles one program per upload`,
      { models: names.slice(0, 20) },
    );
  }
  const name = names[0];
  // torch.export.load returns only the program named "model" (the name torch.export.save writes).
  if (name !== 'model') {
    throw pt2Error(
      ErrorCode.PT2_MISSING_ENTRY,
      `archive's program is named '${excerpt(name, 40)}'; torch.export.load only loads ${PT2_PATHS.model('model')}`,
      { entry: PT2_PATHS.model('model') },
    );
  }
  const required: [string, ArchiveEntry | undefined][] = [
    [PT2_PATHS.weightsConfig(name), layout.weightsConfigs.get(name)],
    [PT2_PATHS.constantsConfig(name), layout.constantsConfigs.get(name)],
    [PT2_PATHS.sampleInputs(name), layout.sampleInputs.get(`${name}.pt`)],
  ];
  for (const [path, entry] of required) {
    if (!entry)
      throw pt2Error(ErrorCode.PT2_MISSING_ENTRY, `archive is missing ${path}, which torch.export.load requires`, {
        entry: path,
      });
  }
  // Configs of a program that is not in the archive: torch ignores them, but they mean a broken archive.
  for (const [kind, configs] of [
    ['weights', layout.weightsConfigs],
    ['constants', layout.constantsConfigs],
  ] as const) {
    for (const [other, entry] of configs) {
      if (other !== name) {
        throw pt2Error(
          ErrorCode.PT2_MALFORMED_PROGRAM,
          `${entry.path} is a ${kind} config for '${excerpt(other, 40)}', but the archive's program is '${name}'`,
          {
            entry: entry.path,
          },
        );
      }
    }
  }
  return name;
}
