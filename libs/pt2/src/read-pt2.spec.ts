import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, KilnError, type DimSpec, type Pt2Summary } from '@kiln/contracts';
import { BufferByteSource, type ByteSource } from './byte-source.js';
import type { Pt2Limits } from './limits.js';
import { readPt2, readPt2File } from './read-pt2.js';
import {
  fixturePath,
  loadFixture,
  patchBytes,
  prependConsistently,
  Pt2Files,
  type FixtureName,
  type PayloadConfigJson,
  type SymIntJson,
} from './testing/archive-fixtures.js';

// Fixtures come from test/fixtures/make_models.py (torch.export.save of small models).
const fixtures: Record<FixtureName, Buffer> = {
  mlp: await loadFixture('mlp'),
  cnn: await loadFixture('cnn'),
  transformer: await loadFixture('transformer'),
  pair: await loadFixture('pair'),
};

const read = (archive: Buffer, limits?: Partial<Pt2Limits>) => readPt2(new BufferByteSource(archive), limits);
const edit = () => Pt2Files.from(fixtures.mlp);

async function expectRejected(
  archive: Buffer | Promise<Buffer>,
  code: ErrorCode,
  message?: RegExp,
  limits?: Partial<Pt2Limits>,
): Promise<KilnError> {
  let caught: unknown;
  try {
    await read(await archive, limits);
  } catch (err) {
    caught = err;
  }
  assert.ok(
    caught instanceof KilnError,
    `expected KilnError(${code}), got ${caught === undefined ? 'success' : caught instanceof Error ? caught.message : 'a non-error'}`,
  );
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** A dynamic dim as make_models.py declares it (symbol names like s77 are export's choice). */
function assertDynamicDim(dim: DimSpec | undefined, min: number, max: number, hint: number): string {
  assert.ok(dim && dim.kind === 'dynamic', 'expected a dynamic dim');
  assert.match(dim.expr, /^s\d+$/);
  assert.deepEqual(dim.symbols, [dim.expr]);
  assert.deepEqual({ min: dim.min, max: dim.max, hint: dim.hint }, { min, max, hint });
  return dim.expr;
}

const zeroStats = { tensors: 0, elements: 0, bytes: 0 };

describe('readPt2 on real torch.export.save archives', () => {
  // Expected numbers checked with torch: ep.state_dict / ep.constants element counts and sizes,
  // call_function nodes of ep.graph, ep.range_constraints.
  it('summarizes the MLP', async () => {
    const summary = await readPt2File(fixturePath('mlp'));
    assert.equal(summary.archiveRoot, 'mlp');
    assert.equal(summary.modelName, 'model');
    assert.equal(summary.schemaVersion.major, 8);
    assert.match(summary.torchVersion, /^2\./);
    assert.equal(typeof summary.opsetVersion.aten, 'number');
    assert.deepEqual(summary.opHistogram, { 'aten.gelu.default': 1, 'aten.linear.default': 3, 'aten.relu.default': 1 });
    assert.equal(summary.nodeCount, 5);

    assert.equal(summary.userInputs.length, 1);
    const [x] = summary.userInputs;
    assert.equal(x.name, 'x');
    assert.equal(x.dtype, 'float32');
    const batch = assertDynamicDim(x.shape[0], 1, 256, 8);
    assert.deepEqual(x.shape[1], { kind: 'static', size: 64 });
    assert.deepEqual(summary.rangeConstraints, { [batch]: { min: 1, max: 256 } });

    assert.equal(summary.userOutputs.length, 1);
    assert.equal(summary.userOutputs[0].dtype, 'float32');
    assertDynamicDim(summary.userOutputs[0].shape[0], 1, 256, 8);
    assert.deepEqual(summary.userOutputs[0].shape[1], { kind: 'static', size: 10 });

    // 64·256 + 256 + 256·256 + 256 + 256·10 + 10 float32 parameters.
    assert.deepEqual(summary.parameters, { tensors: 6, elements: 85_002, bytes: 340_008 });
    assert.deepEqual(summary.buffers, zeroStats);
    assert.deepEqual(summary.constants, zeroStats);
    assert.deepEqual(summary.archive, { entries: 15, bytes: fixtures.mlp.length });
    assert.match(summary.contentHash, /^[0-9a-f]{64}$/);
  });

  it('summarizes the CNN (parameters and batch-norm buffers)', async () => {
    const summary = await read(fixtures.cnn);
    assert.equal(summary.archiveRoot, 'cnn');
    assert.deepEqual(summary.opHistogram, {
      'aten.adaptive_avg_pool2d.default': 1,
      'aten.add.Tensor': 2,
      'aten.batch_norm.default': 6,
      'aten.conv2d.default': 6,
      'aten.flatten.using_ints': 1,
      'aten.linear.default': 1,
      'aten.relu.default': 6,
    });
    assert.equal(summary.nodeCount, 23);
    const [x] = summary.userInputs;
    assertDynamicDim(x.shape[0], 1, 32, 2);
    assert.deepEqual(x.shape.slice(1), [
      { kind: 'static', size: 3 },
      { kind: 'static', size: 32 },
      { kind: 'static', size: 32 },
    ]);
    assert.deepEqual(summary.parameters, { tensors: 20, elements: 28_698, bytes: 114_792 });
    // 6 batch norms × (running_mean, running_var: float32; num_batches_tracked: int64 scalar).
    assert.deepEqual(summary.buffers, { tensors: 18, elements: 294, bytes: 1_200 });
    assert.deepEqual(summary.constants, zeroStats);
    assert.equal(summary.archive.entries, 47);
  });

  it('summarizes the pair model: a derived dim, and the guard torch wrote for it', async () => {
    const summary = await read(fixtures.pair);
    const [x, y] = summary.userInputs;
    const batch = assertDynamicDim(x.shape[0], 1, 64, 4);
    const derived = y.shape[0];
    assert.ok(derived?.kind === 'dynamic');
    assert.equal(derived.expr, `2*${batch}`);
    assert.deepEqual(derived.symbols, [batch]);
    assert.deepEqual(summary.guards, ["(2*L['x'].size()[0]) == L['y'].size()[0]"]);
    assert.deepEqual(summary.parameters, { tensors: 2, elements: 272, bytes: 1_088 });
  });

  it('summarizes the transformer block (two dynamic dims, symbolic-int ops)', async () => {
    const summary = await read(fixtures.transformer);
    // The plain-torch encoder block of test/fixtures/make_models.py: qkv, attention, projection, MLP.
    assert.equal(summary.nodeCount, 17);
    assert.equal(summary.opHistogram['aten.scaled_dot_product_attention.default'], 1);
    assert.equal(summary.opHistogram['aten.linear.default'], 4);
    assert.equal(summary.opHistogram['aten.layer_norm.default'], 2);
    assert.equal(summary.opHistogram['aten.sym_size.int'], 2);
    assert.equal(summary.opHistogram['aten.reshape.default'], 2);
    const [x] = summary.userInputs;
    const batch = assertDynamicDim(x.shape[0], 1, 16, 2);
    const seq = assertDynamicDim(x.shape[1], 2, 128, 16);
    assert.deepEqual(x.shape[2], { kind: 'static', size: 128 });
    assert.deepEqual(summary.rangeConstraints, { [batch]: { min: 1, max: 16 }, [seq]: { min: 2, max: 128 } });
    assert.deepEqual(summary.parameters, { tensors: 12, elements: 198_272, bytes: 793_088 });
    assert.equal(summary.archive.entries, 21);
  });

  it('reads the same summary through small chunks, never asking for more than a chunk', async () => {
    const reads: [number, number][] = [];
    const inner = new BufferByteSource(fixtures.transformer);
    const source: ByteSource = {
      size: inner.size,
      read: (offset, length) => {
        reads.push([offset, length]);
        return inner.read(offset, length);
      },
    };
    const summary = await readPt2(source, { readChunkBytes: 4096 });
    assert.deepEqual(summary, await read(fixtures.transformer));
    assert.ok(reads.every(([, length]) => length <= 4096));
    // Sequential and without much re-reading: the sample inputs are never read and nothing twice
    // beyond the window overlap, so the total stays close to the file size.
    const total = reads.reduce((n, [, length]) => n + length, 0);
    assert.ok(total < fixtures.transformer.length * 1.5, `read ${total} bytes of ${fixtures.transformer.length}`);
  });

  it('rethrows ByteSource failures as they are (not the uploader’s fault), wherever they happen', async () => {
    const inner = new BufferByteSource(fixtures.mlp);
    // With 4 KiB chunks the MLP takes ~100 reads; fail each of the first ones in turn.
    for (let failAt = 1; failAt <= 40; failAt++) {
      const failure = new Error(`S3 said 503 on read ${failAt}`);
      let calls = 0;
      const source: ByteSource = {
        size: inner.size,
        read: (offset, length) => (++calls === failAt ? Promise.reject(failure) : inner.read(offset, length)),
      };
      await assert.rejects(readPt2(source, { readChunkBytes: 4096 }), (err) => err === failure);
    }
  });
});

describe('contentHash', () => {
  it('ignores the container: top folder, entry order, serialization id, sample inputs, extras', async () => {
    const original = await read(fixtures.mlp);
    const files = await edit();
    files.root = 'renamed';
    files.set('.data/serialization_id', '0000000000000000000000000000000000000042');
    files.set('data/sample_inputs/model.pt', Buffer.from([0x80, 0x02, 0x29, 0x2e]));
    files.set('extra/notes.txt', 'trained on tuesday');
    const rewritten = await read(await files.build({ order: 'reversed' }));
    assert.equal(rewritten.archiveRoot, 'renamed');
    assert.equal(rewritten.contentHash, original.contentHash);
    assert.equal(rewritten.archive.entries, 16);
  });

  it('changes when one weight byte changes', async () => {
    const original = await read(fixtures.mlp);
    const files = await edit();
    const weight = Buffer.from(files.get('data/weights/weight_0'));
    weight[100] ^= 0x01;
    files.set('data/weights/weight_0', weight);
    assert.notEqual((await read(await files.build())).contentHash, original.contentHash);
  });

  it('changes when the program changes', async () => {
    const original = await read(fixtures.mlp);
    const files = (await edit()).editProgram((p) => {
      p.graph_module.graph.nodes[1].target = 'torch.ops.aten.sigmoid.default';
    });
    assert.notEqual((await read(await files.build())).contentHash, original.contentHash);
  });

  it('differs between different models', async () => {
    const hashes = await Promise.all(Object.values(fixtures).map(async (f) => (await read(f)).contentHash));
    assert.equal(new Set(hashes).size, Object.keys(fixtures).length);
  });
});

describe('readPt2 rejections: the zip container', () => {
  it('PT2_NOT_ZIP for text, random bytes and empty files', async () => {
    await expectRejected(
      Buffer.from('def forward(self, x): return x\n'.repeat(10)),
      ErrorCode.PT2_NOT_ZIP,
      /not a zip/,
    );
    await expectRejected(Buffer.alloc(4096, 0x5a), ErrorCode.PT2_NOT_ZIP);
    await expectRejected(Buffer.alloc(0), ErrorCode.PT2_NOT_ZIP);
  });

  it('PT2_TRUNCATED for a cut-short upload', async () => {
    await expectRejected(fixtures.mlp.subarray(0, fixtures.mlp.length / 2), ErrorCode.PT2_TRUNCATED, /cut short/);
    await expectRejected(fixtures.mlp.subarray(0, fixtures.mlp.length - 10), ErrorCode.PT2_TRUNCATED);
  });

  it('PT2_TRUNCATED when entry data is corrupt (CRC-32 mismatch)', async () => {
    const corrupt = Buffer.from(fixtures.mlp);
    corrupt[200] ^= 0xff; // inside data/weights/weight_0, the first entry
    await expectRejected(corrupt, ErrorCode.PT2_TRUNCATED, /weight_0: data does not match its CRC-32/);
  });

  it('PT2_TRUNCATED when the central directory lies about sizes', async () => {
    const archive = await (await edit()).build();
    // The end-of-central-directory record (last 22 bytes, no comment) says where the directory starts;
    // its first record is data/weights/weight_0, whose uncompressed size sits at offset 24.
    const first = archive.readUInt32LE(archive.length - 22 + 16);
    assert.equal(archive.readUInt32LE(first), 0x02014b50);
    const lying = Buffer.from(archive);
    lying.writeUInt32LE(lying.readUInt32LE(first + 24) + 1, first + 24);
    await expectRejected(lying, ErrorCode.PT2_TRUNCATED, /size mismatch/);
  });

  it('accepts zip64 archives (torch writes them past 4 GiB)', async () => {
    const summary = await read(await (await edit()).build({ zip64: true }));
    assert.equal(summary.contentHash, (await read(fixtures.mlp)).contentHash);
  });

  it('PT2_AMBIGUOUS_ZIP for layouts two zip parsers could read differently', async () => {
    // torch.export.load falls back to Python's zipfile (and torch.load of legacy pickles) when its own
    // reader fails; these layouts make the two parsers disagree.
    // Bytes after the end record: the end record is not found where it must be (as for a cut-short file).
    await expectRejected(Buffer.concat([fixtures.mlp, Buffer.from('trailing')]), ErrorCode.PT2_TRUNCATED);
    // Junk before the zip: the offsets no longer match, so it does not even open as a zip.
    await expectRejected(Buffer.concat([Buffer.from('prefix'), fixtures.mlp]), ErrorCode.PT2_NOT_ZIP);
    // A consistent polyglot (offsets fixed up): something other than the zip sits at byte 0.
    const polyglot = prependConsistently(await (await edit()).build(), Buffer.from('#!/bin/sh\necho hi\n'));
    await expectRejected(polyglot, ErrorCode.PT2_AMBIGUOUS_ZIP, /18 bytes precede the first entry/);
    const withComment = Buffer.concat([fixtures.mlp, Buffer.from('hi')]);
    withComment.writeUInt16LE(2, fixtures.mlp.length - 2);
    await expectRejected(withComment, ErrorCode.PT2_AMBIGUOUS_ZIP, /zip comment/);
    // A record hidden past the count: the end record says 15 entries, the directory holds 16.
    const sixteen = await (await edit()).set('extra/hidden.txt', 'x').build();
    const hidden = Buffer.from(sixteen);
    hidden.writeUInt16LE(15, hidden.length - 22 + 8);
    hidden.writeUInt16LE(15, hidden.length - 22 + 10);
    await expectRejected(hidden, ErrorCode.PT2_AMBIGUOUS_ZIP, /records take/);
  });

  it('PT2_MISSING_ENTRY without .data/version (torch would fall back to its legacy loader)', async () => {
    await expectRejected(
      (await edit()).delete('.data/version').build(),
      ErrorCode.PT2_MISSING_ENTRY,
      /\.data\/version/,
    );
    await expectRejected(
      (await edit()).set('.data/version', 'six').build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /\.data\/version/,
    );
  });

  it('PT2_MALFORMED_PROGRAM / PT2_ENTRY_TOO_LARGE for a .data/serialization_id that is not the digits torch writes', async () => {
    // torch's reader loads this record whole on open: it must stay the 40 digits torch writes.
    await expectRejected(
      (await edit()).set('.data/serialization_id', Buffer.alloc(1 << 20, 0x31)).build(),
      ErrorCode.PT2_ENTRY_TOO_LARGE,
      /serialization_id is 1048576 bytes/,
    );
    await expectRejected(
      (await edit()).set('.data/serialization_id', "__import__('os')").build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /serialization_id is '__import__\('os'\)'/,
    );
  });

  it('PT2_BAD_ENTRY_NAME for path traversal, absolute paths, backslashes, control characters', async () => {
    const withEntry = async (placeholder: string, actual: string) =>
      patchBytes(
        await (await edit()).build({ extra: [{ name: placeholder, data: Buffer.from('x') }] }),
        placeholder,
        actual,
      );
    await expectRejected(withEntry('mlp/zz/evil', 'mlp/../evil'), ErrorCode.PT2_BAD_ENTRY_NAME, /relative path/);
    await expectRejected(withEntry('Xmlp/abs', '/mlp/abs'), ErrorCode.PT2_BAD_ENTRY_NAME, /absolute path/);
    await expectRejected(withEntry('mlp/aXb', 'mlp/a\\b'), ErrorCode.PT2_BAD_ENTRY_NAME, /invalid characters/);
    await expectRejected(withEntry('mlp/aXb', 'mlp/a\x00b'), ErrorCode.PT2_BAD_ENTRY_NAME, /control characters/);
    await expectRejected(withEntry('mlp/aXb', 'mlp/a\x1bb'), ErrorCode.PT2_BAD_ENTRY_NAME, /control characters/);
    await expectRejected(withEntry('mlp/x/./y', 'mlp/x/./y'), ErrorCode.PT2_BAD_ENTRY_NAME, /'\.' segment/);
  });

  it('PT2_BAD_ENTRY_NAME for a second top folder, duplicates, symlinks', async () => {
    const files = await edit();
    await expectRejected(
      files.build({ extra: [{ name: 'other/archive_format', data: Buffer.from('pt2') }] }),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /not under the archive's top folder 'mlp\/'/,
    );
    await expectRejected(
      files.build({ extra: [{ name: 'mlp/archive_format', data: Buffer.from('pt2') }] }),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /appears twice/,
    );
    await expectRejected(
      files.build({ extra: [{ name: 'mlp/Archive_Format', data: Buffer.from('pt2') }] }),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /appears twice in the archive \(names compared ignoring case and Unicode normalization\)/,
    );
    await expectRejected(
      files.build({ extra: [{ name: 'mlp/extra/link', data: Buffer.from('/etc/passwd'), mode: 0o120777 }] }),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /symbolic link/,
    );
  });

  it('PT2_BAD_ENTRY_NAME for entries torch.export.save does not write', async () => {
    await expectRejected(
      (await edit()).set('notes.txt', 'hi').build(),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /notes\.txt' is not an entry/,
    );
    await expectRejected(
      (await edit()).set('data/aotinductor/model/abc.wrapper.so', '\x7fELF').build(),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /AOTInductor package/,
    );
    await expectRejected(
      (await edit()).set('data/weights/sub/weight_9', 'x').build(),
      ErrorCode.PT2_BAD_ENTRY_NAME,
      /flat/,
    );
  });

  it('PT2_TOO_MANY_ENTRIES over the entry limit', async () => {
    await expectRejected(fixtures.mlp, ErrorCode.PT2_TOO_MANY_ENTRIES, /15 entries, more than the limit of 10/, {
      maxEntries: 10,
    });
  });

  it('PT2_ENTRY_TOO_LARGE for an entry, the total, or a JSON entry over its limit', async () => {
    await expectRejected(fixtures.mlp, ErrorCode.PT2_ENTRY_TOO_LARGE, /weight_2 is 262144 bytes/, {
      maxEntryBytes: 100_000,
    });
    await expectRejected(fixtures.mlp, ErrorCode.PT2_ENTRY_TOO_LARGE, /add up to more than/, {
      maxTotalBytes: 100_000,
    });
    await expectRejected(
      fixtures.mlp,
      ErrorCode.PT2_ENTRY_TOO_LARGE,
      /models\/model\.json is \d+ bytes; entries parsed in memory are limited to 5000 bytes/,
      {
        maxJsonBytes: 5_000,
      },
    );
  });

  it('PT2_COMPRESSED_ENTRY for a deflated entry', async () => {
    const files = await edit();
    await expectRejected(
      files.build({ compress: ['data/weights/weight_2'] }),
      ErrorCode.PT2_COMPRESSED_ENTRY,
      /data\/weights\/weight_2 is compressed \(method 8\)/,
    );
  });
});

describe('readPt2 rejections: archive format and layout', () => {
  it('PT2_UNSUPPORTED_ARCHIVE_VERSION unless archive_version is exactly 0', async () => {
    await expectRejected(
      (await edit()).set('archive_version', '1').build(),
      ErrorCode.PT2_UNSUPPORTED_ARCHIVE_VERSION,
      /'1'/,
    );
    await expectRejected(
      (await edit()).set('archive_version', '0\n').build(),
      ErrorCode.PT2_UNSUPPORTED_ARCHIVE_VERSION,
    );
  });

  it('PT2_BAD_ARCHIVE_FORMAT unless archive_format is pt2', async () => {
    await expectRejected(
      (await edit()).set('archive_format', 'pt3').build(),
      ErrorCode.PT2_BAD_ARCHIVE_FORMAT,
      /'pt3'/,
    );
  });

  it('PT2_MISSING_ENTRY for a zip that is not a .pt2, or lacks required entries', async () => {
    await expectRejected(
      (await edit()).delete('archive_format').build(),
      ErrorCode.PT2_MISSING_ENTRY,
      /archive_format/,
    );
    await expectRejected(
      (await edit()).delete('archive_version').build(),
      ErrorCode.PT2_MISSING_ENTRY,
      /archive_version/,
    );
    await expectRejected((await edit()).delete('models/model.json').build(), ErrorCode.PT2_MISSING_ENTRY, /no program/);
    await expectRejected(
      (await edit()).delete('data/weights/model_weights_config.json').build(),
      ErrorCode.PT2_MISSING_ENTRY,
      /model_weights_config\.json/,
    );
    await expectRejected(
      (await edit()).delete('data/constants/model_constants_config.json').build(),
      ErrorCode.PT2_MISSING_ENTRY,
      /model_constants_config\.json/,
    );
    await expectRejected(
      (await edit()).delete('data/sample_inputs/model.pt').build(),
      ErrorCode.PT2_MISSING_ENTRY,
      /sample_inputs/,
    );
  });

  it('PT2_MULTIPLE_MODELS for two programs', async () => {
    const files = await edit();
    files.set('models/second.json', files.get('models/model.json'));
    await expectRejected(files.build(), ErrorCode.PT2_MULTIPLE_MODELS, /2 programs \(model, second\)/);
  });
});

describe('readPt2 rejections: pickles and custom objects', () => {
  it('PT2_PICKLED_DATA for a use_pickle weight', async () => {
    const files = (await edit()).editPayloadConfig('weights', (c) => {
      c.config['net.0.weight'].use_pickle = true;
    });
    await expectRejected(
      files.build(),
      ErrorCode.PT2_PICKLED_DATA,
      /weight 'net\.0\.weight' \(data\/weights\/weight_0\) is stored as a pickle/,
    );
  });

  it('PT2_PICKLED_DATA for a use_pickle constant', async () => {
    const files = await edit();
    files.set('data/constants/tensor_0', Buffer.from([0x80, 0x02, 0x29, 0x2e]));
    const weights = files.json<PayloadConfigJson>('data/weights/model_weights_config.json');
    files.editPayloadConfig('constants', (c) => {
      const meta = weights.config['net.0.bias'].tensor_meta;
      c.config.lifted = { path_name: 'tensor_0', is_param: false, use_pickle: true, tensor_meta: meta };
    });
    await expectRejected(files.build(), ErrorCode.PT2_PICKLED_DATA, /constant 'lifted'/);
  });

  it('PT2_PICKLED_DATA for legacy pickled weights and pickles hidden in extra/', async () => {
    await expectRejected(
      (await edit()).set('data/weights/model.pt', 'x').build(),
      ErrorCode.PT2_PICKLED_DATA,
      /model\.pt/,
    );
    await expectRejected(
      (await edit()).set('extra/config.json', Buffer.from([0x80, 0x04, 0x95, 0x00])).build(),
      ErrorCode.PT2_PICKLED_DATA,
      /extra\/config\.json is a pickle/,
    );
    await expectRejected((await edit()).set('extra/state.pkl', 'x').build(), ErrorCode.PT2_PICKLED_DATA);
  });

  it('accepts plain text in extra/ and the sample-inputs pickle', async () => {
    const summary = await read(await (await edit()).set('extra/readme.txt', 'plain text').build());
    assert.equal(summary.archive.entries, 16);
  });

  it('PT2_CUSTOM_OBJECT for custom_obj / opaque_obj constants', async () => {
    for (const file of ['custom_obj_0', 'opaque_obj_0']) {
      const files = await edit();
      files.set(`data/constants/${file}`, Buffer.from([0x80, 0x02, 0x29, 0x2e]));
      files.editPayloadConfig('constants', (c) => {
        c.config.obj = { path_name: file, is_param: false, use_pickle: true, tensor_meta: null };
      });
      await expectRejected(files.build(), ErrorCode.PT2_CUSTOM_OBJECT, new RegExp(`constant 'obj' \\(${file}\\)`));
    }
  });

  it('PT2_CUSTOM_OBJECT for custom objects in the graph', async () => {
    const files = (await edit()).editProgram((p) => {
      p.graph_module.graph.custom_obj_values = { obj: { name: 'obj', class_fqn: '__torch__.torch.classes.x.Y' } };
    });
    await expectRejected(files.build(), ErrorCode.PT2_CUSTOM_OBJECT, /custom_obj_values is not empty/);
    const arg = (await edit()).editProgram((p) => {
      p.graph_module.graph.nodes[0].inputs[0].arg = { as_custom_obj: { name: 'obj', class_fqn: 'x.Y' } };
    });
    await expectRejected(arg.build(), ErrorCode.PT2_CUSTOM_OBJECT, /nodes\[0\]\.inputs\[0\]\.arg\.as_custom_obj/);
  });
});

describe('readPt2 rejections: the program', () => {
  it('PT2_UNSUPPORTED_SCHEMA for another schema major', async () => {
    const files = (await edit()).editProgram((p) => {
      p.schema_version.major = 9;
    });
    await expectRejected(files.build(), ErrorCode.PT2_UNSUPPORTED_SCHEMA, /schema 9\.20/);
  });

  it('PT2_GUARDS_CODE for a guard outside the grammar (code, not a size relation)', async () => {
    const files = (await edit()).editProgram((p) => {
      p.guards_code = ["L['x'].size()[0] <= 256", "__import__('os').system('id') or L['x'].size()[0] <= 256"];
    });
    await expectRejected(
      files.build(),
      ErrorCode.PT2_GUARDS_CODE,
      /guards_code\[1\]: __import__.* outside the guard grammar .*'__import__' is not a name a guard may use/,
    );
  });

  it('accepts guards that relate input sizes, and lists them in the summary', async () => {
    const guards = ["(2*L['x'].size()[0]) == L['x'].size()[1]", "L['x'].size()[0] <= 256 and L['x'].stride()[1] == 1"];
    const files = (await edit()).editProgram((p) => {
      p.guards_code = guards;
    });
    const summary = await readPt2(new BufferByteSource(await files.build()));
    assert.deepEqual(summary.guards, guards);
  });

  it('PT2_GUARDS_CODE for too many guards', async () => {
    const files = (await edit()).editProgram((p) => {
      p.guards_code = Array.from({ length: 1025 }, () => "L['x'].size()[0] >= 1");
    });
    await expectRejected(files.build(), ErrorCode.PT2_GUARDS_CODE, /1025 entries \(limit 1024\)/);
  });

  const withSize = (exprStr: string) =>
    edit().then((files) =>
      files.editProgram((p) => {
        const size: SymIntJson = { as_expr: { expr_str: exprStr, hint: { as_int: 8 } } };
        p.graph_module.graph.tensor_values.x.sizes[0] = size;
      }),
    );

  it('PT2_BAD_SHAPE_EXPR for code in expr_str, naming entry and path', async () => {
    const err = await expectRejected(
      (await withSize("__import__('os').system('x')")).build(),
      ErrorCode.PT2_BAD_SHAPE_EXPR,
      /^models\/model\.json: graph_module\.graph\.tensor_values\.x\.sizes\[0\]\.as_expr\.expr_str: /,
    );
    assert.equal(err.details?.path, 'graph_module.graph.tensor_values.x.sizes[0].as_expr.expr_str');
    await expectRejected((await withSize("Symbol('s0').__class__")).build(), ErrorCode.PT2_BAD_SHAPE_EXPR, /__class__/);
  });

  it('PT2_BAD_SHAPE_EXPR wherever an expr_str hides', async () => {
    const inSymInts = (await edit()).editProgram((p) => {
      p.graph_module.graph.sym_int_values.evil = { as_expr: { expr_str: "exec('x')" } };
    });
    await expectRejected(inSymInts.build(), ErrorCode.PT2_BAD_SHAPE_EXPR, /sym_int_values\.evil/);
    const inConfig = (await edit()).editPayloadConfig('weights', (c) => {
      c.config['net.0.bias'].tensor_meta!.sizes[0] = { as_expr: { expr_str: "eval('1')" } };
    });
    await expectRejected(
      inConfig.build(),
      ErrorCode.PT2_BAD_SHAPE_EXPR,
      /model_weights_config\.json: config\.net\.0\.bias/,
    );
    const inRanges = (await edit()).editProgram((p) => {
      p.range_constraints["__import__('os')"] = { min_val: 1, max_val: 2 };
    });
    await expectRejected(inRanges.build(), ErrorCode.PT2_BAD_SHAPE_EXPR, /range_constraints key/);
  });

  it('PT2_UNKNOWN_OP_NAMESPACE naming the op', async () => {
    for (const target of ['torch.ops.evil.boom.default', 'torch.load', '_operator.methodcaller']) {
      const files = (await edit()).editProgram((p) => {
        p.graph_module.graph.nodes[2].target = target;
      });
      const escaped = target.replace(/\./g, '\\.');
      await expectRejected(
        files.build(),
        ErrorCode.PT2_UNKNOWN_OP_NAMESPACE,
        new RegExp(`nodes\\[2\\]\\.target: operator '${escaped}'`),
      );
    }
    const asOperator = (await edit()).editProgram((p) => {
      p.graph_module.graph.nodes[0].inputs[0].arg = { as_operator: 'builtins.exec' };
    });
    await expectRejected(
      asOperator.build(),
      ErrorCode.PT2_UNKNOWN_OP_NAMESPACE,
      /as_operator: operator 'builtins\.exec'/,
    );
  });

  it('checks higher-order-op subgraphs like the top graph', async () => {
    const withSubgraph = async (innerTarget: string, innerSize: SymIntJson) =>
      (await edit()).editProgram((p) => {
        const subgraph = {
          inputs: [],
          outputs: [],
          nodes: [{ target: innerTarget, inputs: [], outputs: [], metadata: {} }],
          tensor_values: {
            t: {
              dtype: 7,
              sizes: [innerSize],
              strides: [{ as_int: 1 }],
              storage_offset: { as_int: 0 },
              device: { type: 'cpu' },
              layout: 7,
              requires_grad: false,
            },
          },
          sym_int_values: {},
          sym_bool_values: {},
        };
        p.graph_module.graph.nodes.push({
          target: 'torch.ops.higher_order.cond',
          inputs: [{ name: 'true_fn', arg: { as_graph: { name: 'true_graph_0', graph: subgraph } }, kind: 1 }],
          outputs: [],
          metadata: {},
        });
      });
    const ok = await read(await (await withSubgraph('torch.ops.aten.relu.default', { as_int: 4 })).build());
    assert.equal(ok.nodeCount, 7);
    assert.equal(ok.opHistogram['higher_order.cond'], 1);
    assert.equal(ok.opHistogram['aten.relu.default'], 2);
    await expectRejected(
      (await withSubgraph('torch.ops.evil.boom.default', { as_int: 4 })).build(),
      ErrorCode.PT2_UNKNOWN_OP_NAMESPACE,
      /nodes\[5\]\.inputs\[0\]\.arg\.as_graph\.graph\.nodes\[0\]\.target: operator 'torch\.ops\.evil\.boom\.default'/,
    );
    await expectRejected(
      (await withSubgraph('torch.ops.aten.relu.default', { as_expr: { expr_str: "__import__('os')" } })).build(),
      ErrorCode.PT2_BAD_SHAPE_EXPR,
      /as_graph\.graph\.tensor_values\.t\.sizes\[0\]\.as_expr\.expr_str/,
    );
  });

  it('PT2_MALFORMED_PROGRAM for broken JSON and structure, with the path', async () => {
    await expectRejected(
      (await edit()).set('models/model.json', '{"graph_module": ').build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /not valid JSON/,
    );
    await expectRejected(
      (await edit()).set('models/model.json', Buffer.from([0x7b, 0xff, 0x7d])).build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /UTF-8/,
    );
    const noNodes = (await edit()).editProgram((p) => {
      delete (p.graph_module.graph as Partial<typeof p.graph_module.graph>).nodes;
    });
    await expectRejected(
      noNodes.build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /graph_module\.graph\.nodes is missing \(a required field of Graph\)/,
    );
    const badDtype = (await edit()).editJson<{
      graph_module: { graph: { tensor_values: Record<string, { dtype: number }> } };
    }>('models/model.json', (p) => {
      p.graph_module.graph.tensor_values.x.dtype = 99;
    });
    await expectRejected(
      badDtype.build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /tensor_values\.x\.dtype must be one of the ScalarType values .*got number 99/,
    );
  });

  it('PT2_MALFORMED_PROGRAM past the node or nesting limits', async () => {
    await expectRejected(fixtures.mlp, ErrorCode.PT2_MALFORMED_PROGRAM, /5 nodes .* limit of 3/, { maxNodes: 3 });
    await expectRejected(fixtures.mlp, ErrorCode.PT2_MALFORMED_PROGRAM, /nested more than 6 levels/, {
      maxJsonDepth: 6,
    });
  });

  it('PT2_MALFORMED_PROGRAM when weights are missing, short, or unreferenced', async () => {
    const missing = (await edit()).editPayloadConfig('weights', (c) => {
      c.config['net.0.weight'].path_name = 'weight_77';
    });
    await expectRejected(
      missing.build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /points at data\/weights\/weight_77, which is not in the archive/,
    );
    const short = (await edit()).set('data/weights/weight_0', Buffer.alloc(1000));
    await expectRejected(
      short.build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /describes 65536 bytes of data but data\/weights\/weight_0 holds 1000/,
    );
    const stray = (await edit()).set('data/weights/weight_99', Buffer.alloc(16));
    await expectRejected(stray.build(), ErrorCode.PT2_MALFORMED_PROGRAM, /weight_99 is not referenced/);
    const absent = (await edit()).editPayloadConfig('weights', (c) => {
      delete c.config['net.4.bias'];
    });
    await expectRejected(
      absent.build(),
      ErrorCode.PT2_MALFORMED_PROGRAM,
      /parameter 'net\.4\.bias' .* is missing from the weights config/,
    );
  });
});

describe('readPt2 summary details', () => {
  it('reports unbounded ranges as null', async () => {
    const files = (await edit()).editProgram((p) => {
      for (const range of Object.values(p.range_constraints)) {
        range.min_val = '-inf';
        range.max_val = null;
      }
    });
    const summary: Pt2Summary = await read(await files.build());
    const dim = summary.userInputs[0].shape[0];
    assert.ok(dim.kind === 'dynamic');
    assert.deepEqual([dim.min, dim.max], [null, null]);
    assert.deepEqual(Object.values(summary.rangeConstraints), [{ min: null, max: null }]);
  });

  it('renders composite dims and leaves their range to the caller', async () => {
    const files = (await edit()).editProgram((p) => {
      const [batch] = Object.keys(p.range_constraints);
      p.graph_module.graph.tensor_values.x.sizes[0] = {
        as_expr: {
          expr_str: `Add(Mul(Integer(2), Symbol('${batch}', positive=True, integer=True)), Integer(1))`,
          hint: { as_int: 17 },
        },
      };
    });
    const [x] = (await read(await files.build())).userInputs;
    const dim = x.shape[0];
    assert.ok(dim.kind === 'dynamic');
    assert.match(dim.expr, /^2\*s\d+ \+ 1$/);
    assert.deepEqual([dim.min, dim.max, dim.hint], [null, null, 17]);
  });
});
