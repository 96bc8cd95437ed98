import { createHash } from 'node:crypto';
import { ErrorCode, type Pt2Summary } from '@kiln/contracts';
import {
  classifyEntries,
  PT2_PATHS,
  rejectRefusedEntries,
  requireSingleModel,
  type Pt2Layout,
} from './archive-layout.js';
import { FileByteSource, type ByteSource } from './byte-source.js';
import { combineContentHash, type ContentFile } from './content-hash.js';
import { excerpt, pt2Error } from './errors.js';
import { ShapeExprCache } from './expr-cache.js';
import { resolvePt2Limits, type Pt2Limits } from './limits.js';
import { analyzePayloadConfig, checkStateAgainstConfig, type PayloadConfigAnalysis } from './payload-config.js';
import { analyzeProgram } from './program.js';
import { Pt2Zip, type ArchiveEntry } from './zip-archive.js';

/** Marker files are a few bytes; anything bigger is not what torch wrote. */
const MAX_MARKER_BYTES = 64;

/**
 * Validates a `.pt2` written by torch.export.save and summarizes it, reading only the central
 * directory, the small JSON entries, and the weight files (streamed through sha256 in large
 * sequential chunks). Nothing in the upload is evaluated or unpickled.
 *
 * Throws KilnError with a PT2_* code when the upload is rejected. Errors of the ByteSource itself
 * (disk, network) are rethrown as they are: they are not the uploader's fault.
 */
export async function readPt2(source: ByteSource, limits?: Partial<Pt2Limits>): Promise<Pt2Summary> {
  return (await validatePt2(source, limits)).summary;
}

/** What validation established about an archive, beyond its summary. */
export interface ValidatedPt2 {
  summary: Pt2Summary;
  /** sha256 (hex) of each file the content hash covers, by path below the top folder. */
  contentFiles: ReadonlyMap<string, string>;
}

/** readPt2, also returning the sha256 of each content file (writePortablePt2 checks its copy against them). */
export async function validatePt2(source: ByteSource, limits?: Partial<Pt2Limits>): Promise<ValidatedPt2> {
  const resolved = resolvePt2Limits(limits);
  const zip = await Pt2Zip.open(source, resolved);
  try {
    return await summarize(zip, source, resolved);
  } finally {
    zip.close();
  }
}

/** readPt2 over a local file. */
export async function readPt2File(path: string, limits?: Partial<Pt2Limits>): Promise<Pt2Summary> {
  const source = await FileByteSource.open(path);
  try {
    return await readPt2(source, limits);
  } finally {
    await source.close();
  }
}

async function summarize(zip: Pt2Zip, source: ByteSource, limits: Pt2Limits): Promise<ValidatedPt2> {
  const layout = classifyEntries(zip.entries.values());
  // Format markers before anything else, so a TorchScript file or a random zip gets a message that
  // says so rather than a complaint about its first unexpected entry.
  await checkMarkers(zip, layout);
  rejectRefusedEntries(layout);
  const modelName = requireSingleModel(layout);

  const exprs = new ShapeExprCache({ maxLength: limits.maxExprLength, maxDepth: limits.maxExprDepth });
  const modelEntry = layout.models.get(modelName)!;
  const modelBytes = await zip.read(modelEntry, limits.maxJsonBytes);
  const program = analyzeProgram(modelEntry.path, modelBytes, limits, exprs);

  const weightsEntry = layout.weightsConfigs.get(modelName)!;
  const weightsBytes = await zip.read(weightsEntry, limits.maxJsonBytes);
  const weights = analyzePayloadConfig('weights', weightsEntry.path, weightsBytes, layout.weightFiles, limits, exprs);
  const constantsEntry = layout.constantsConfigs.get(modelName)!;
  const constantsBytes = await zip.read(constantsEntry, limits.maxJsonBytes);
  const constants = analyzePayloadConfig(
    'constants',
    constantsEntry.path,
    constantsBytes,
    layout.constantFiles,
    limits,
    exprs,
  );

  checkStateAgainstConfig('weights', weightsEntry.path, program.weightsState, weights);
  checkStateAgainstConfig('constants', constantsEntry.path, program.constantsState, constants);
  const weightPayloads = referencedPayloads(layout.weightFiles, weights, weightsEntry.path);
  const constantPayloads = referencedPayloads(layout.constantFiles, constants, constantsEntry.path);
  await checkExtras(zip, layout.extras);

  const contentFiles: ContentFile[] = [
    inMemory(modelEntry, modelBytes),
    inMemory(weightsEntry, weightsBytes),
    inMemory(constantsEntry, constantsBytes),
  ];
  // In archive order, so a remote ByteSource sees one sequential sweep over the weights.
  const payloads = [...weightPayloads, ...constantPayloads].sort((a, b) => a.offset - b.offset);
  for (const entry of payloads) {
    contentFiles.push({ path: entry.path, size: entry.size, sha256: await zip.sha256(entry) });
  }
  // The entries not read above (sample inputs, markers read only in part) still get their local header and
  // data descriptor checked, and all entries must tile the file: no byte goes unaccounted for.
  await zip.finishLayout();

  const summary: Pt2Summary = {
    archiveRoot: zip.root,
    modelName,
    schemaVersion: program.schemaVersion,
    torchVersion: program.torchVersion,
    opsetVersion: program.opsetVersion,
    opHistogram: program.opHistogram,
    nodeCount: program.nodeCount,
    userInputs: program.userInputs,
    userOutputs: program.userOutputs,
    rangeConstraints: program.rangeConstraints,
    guards: program.guards,
    parameters: program.parameters,
    buffers: program.buffers,
    constants: program.constants,
    archive: { entries: zip.entries.size, bytes: source.size },
    contentHash: combineContentHash(contentFiles),
  };
  return { summary, contentFiles: new Map(contentFiles.map((f) => [f.path, f.sha256.toString('hex')])) };
}

async function checkMarkers(zip: Pt2Zip, layout: Pt2Layout): Promise<void> {
  const format = await readMarker(zip, layout.archiveFormat, PT2_PATHS.archiveFormat);
  if (format !== 'pt2') {
    throw pt2Error(ErrorCode.PT2_BAD_ARCHIVE_FORMAT, `archive_format is '${excerpt(format, 40)}', expected 'pt2'`, {
      entry: PT2_PATHS.archiveFormat,
    });
  }
  // torch's loader compares the text exactly with "0" and refuses anything else.
  const version = await readMarker(zip, layout.archiveVersion, PT2_PATHS.archiveVersion);
  if (version !== '0') {
    throw pt2Error(
      ErrorCode.PT2_UNSUPPORTED_ARCHIVE_VERSION,
      `archive_version is '${excerpt(version, 40)}'; torch.export.load (and Kiln) read archive version 0 only`,
      { entry: PT2_PATHS.archiveVersion },
    );
  }
  // torch's reader needs the container version; without it torch.export.load falls back to a legacy
  // path that reads the zip with another parser and torch.load()s pickles.
  const containerVersion = await readMarker(zip, layout.dataVersion, PT2_PATHS.dataVersion);
  if (!/^[0-9]{1,9}\n?$/.test(containerVersion)) {
    throw pt2Error(
      ErrorCode.PT2_MALFORMED_PROGRAM,
      `.data/version is '${excerpt(containerVersion, 40)}', expected the zip container version number`,
      { entry: PT2_PATHS.dataVersion },
    );
  }
  // torch's reader (PyTorchStreamReader) reads this record whole when it opens the archive, on every device:
  // 40 digits when torch writes it, never a place for megabytes.
  if (layout.serializationId) {
    const id = await readMarker(zip, layout.serializationId, '.data/serialization_id');
    if (!/^[0-9]{1,64}$/.test(id)) {
      throw pt2Error(
        ErrorCode.PT2_MALFORMED_PROGRAM,
        `.data/serialization_id is '${excerpt(id, 40)}', expected the digits torch writes`,
        { entry: '.data/serialization_id' },
      );
    }
  }
  if (layout.byteorder) {
    const order = await readMarker(zip, layout.byteorder, PT2_PATHS.byteorder);
    if (order !== 'little' && order !== 'big') {
      throw pt2Error(
        ErrorCode.PT2_MALFORMED_PROGRAM,
        `byteorder is '${excerpt(order, 40)}', expected 'little' or 'big'`,
        {
          entry: PT2_PATHS.byteorder,
        },
      );
    }
  }
}

async function readMarker(zip: Pt2Zip, entry: ArchiveEntry | undefined, path: string): Promise<string> {
  if (!entry) {
    throw pt2Error(
      ErrorCode.PT2_MISSING_ENTRY,
      `archive has no ${path} entry, so it was not written by torch.export.save (TorchScript files and other zips are not .pt2 programs)`,
      { entry: path },
    );
  }
  return (await zip.read(entry, MAX_MARKER_BYTES)).toString('latin1');
}

/** Payload files must all be referenced by the config: nothing rides along unvalidated. */
function referencedPayloads(
  files: ReadonlyMap<string, ArchiveEntry>,
  config: PayloadConfigAnalysis,
  configPath: string,
): ArchiveEntry[] {
  const payloads: ArchiveEntry[] = [];
  for (const [file, entry] of files) {
    if (!config.referencedFiles.has(file)) {
      throw pt2Error(ErrorCode.PT2_MALFORMED_PROGRAM, `${entry.path} is not referenced by ${configPath}`, {
        entry: entry.path,
      });
    }
    payloads.push(entry);
  }
  return payloads;
}

/**
 * `extra/*` files are user metadata that torch reads as text; refuse any that is a pickle (protocol 2+
 * starts with 0x80 and the protocol number) or a zip (torch.save's format) under an innocent name.
 * Protocol 0/1 pickles are text and cannot be told apart reliably; torch never unpickles extras anyway.
 */
async function checkExtras(zip: Pt2Zip, extras: readonly ArchiveEntry[]): Promise<void> {
  for (const entry of extras) {
    const head = await zip.head(entry, 4);
    const isPickle = head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5;
    const isZip = head.length >= 4 && head.readUInt32LE(0) === 0x04034b50;
    if (isPickle || isZip) {
      throw pt2Error(
        ErrorCode.PT2_PICKLED_DATA,
        `${entry.path} is a ${isPickle ? 'pickle' : 'torch.save/zip file'}; only sample inputs may be pickled`,
        {
          entry: entry.path,
        },
      );
    }
  }
}

function inMemory(entry: ArchiveEntry, bytes: Buffer): ContentFile {
  return { path: entry.path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest() };
}
