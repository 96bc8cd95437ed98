// Attack tests for the upload wall (issue 10, item 6): crafted .pt2 archives uploaded through the real API, by the
// direct upload route and by the presigned multipart path (parts PUT straight to SeaweedFS), must be answered
// 422 with their PT2_* code, leave no version and no object in S3. And the archive a valid upload leaves in S3,
// which build workers compile and devices download as the portable fallback, holds no pickle.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ErrorCode } from '@kiln/contracts';
import { AVX512_SERVER_FINGERPRINT } from '@kiln/matching';
import {
  loadFixture,
  Pt2Files,
  unzip,
  type GraphJson,
  type ProgramJson,
} from '../../libs/pt2/src/testing/archive-fixtures.js';
import { craftEntriesOf, craftWith, craftZip, extraField } from '../../libs/pt2/src/testing/zip-crafter.js';
import { api, createTenant, startApi, storage, type TestTenant, type ApiProcess } from '../support/kiln-harness.js';

let app: ApiProcess;
let tenant: TestTenant;
const s3 = storage();

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'clean-uploads');
});

after(async () => {
  await app?.close();
  s3.client.destroy();
});

const mlp = await loadFixture('mlp');
const tensor = (name: string) => ({ as_tensor: { name } });
const graphOf = (p: ProgramJson): GraphJson => p.graph_module.graph;
const program = async (edit: (p: ProgramJson) => void): Promise<Buffer> =>
  (await Pt2Files.from(mlp)).editProgram(edit).build();
const pickle = Buffer.from([0x80, 0x04, 0x95, 0x05, 0, 0, 0, 0, 0, 0, 0, 0x4b, 0x2a, 0x2e]);

/** Each crafted archive, the code it must be refused with, and what it tries. */
const ATTACKS: { name: string; code: ErrorCode; archive: () => Promise<Buffer> }[] = [
  {
    name: 'a node reads a tensor nothing defines',
    code: ErrorCode.PT2_MALFORMED_GRAPH,
    archive: () =>
      program((p) => {
        graphOf(p).nodes[1].inputs[0].arg = tensor('ghost');
      }),
  },
  {
    name: 'a node consumes its own output',
    code: ErrorCode.PT2_MALFORMED_GRAPH,
    archive: () =>
      program((p) => {
        graphOf(p).nodes[1].inputs[0].arg = tensor('relu');
      }),
  },
  {
    name: 'two nodes write one output name',
    code: ErrorCode.PT2_MALFORMED_GRAPH,
    archive: () =>
      program((p) => {
        graphOf(p).nodes[3].outputs = [tensor('linear')];
      }),
  },
  {
    name: 'a cycle between two nodes',
    code: ErrorCode.PT2_MALFORMED_GRAPH,
    archive: () =>
      program((p) => {
        graphOf(p).nodes[1].inputs[0].arg = tensor('linear_1');
      }),
  },
  {
    name: 'the signature names an input the graph does not have',
    code: ErrorCode.PT2_MALFORMED_GRAPH,
    archive: () =>
      program((p) => {
        p.graph_module.signature.input_specs[6] = { user_input: { arg: tensor('linear') } };
      }),
  },
  {
    name: 'a local header names another entry than the central directory',
    code: ErrorCode.PT2_AMBIGUOUS_ZIP,
    archive: () =>
      craftWith(mlp, '.data/serialization_id', { localNameRaw: Buffer.from('mlp/.data/serialization_xx') }),
  },
  {
    name: 'a NUL in an entry name',
    code: ErrorCode.PT2_BAD_ENTRY_NAME,
    archive: async () => {
      const entries = await craftEntriesOf(mlp);
      entries.push({ name: 'x', nameRaw: Buffer.from('mlp/extra/a\u0000b.txt'), data: Buffer.from('x') });
      return craftZip(entries);
    },
  },
  {
    name: 'a right-to-left override in an entry name',
    code: ErrorCode.PT2_BAD_ENTRY_NAME,
    archive: async () => {
      const entries = await craftEntriesOf(mlp);
      entries.push({ name: 'mlp/extra/notes\u202Etxt.exe', data: Buffer.from('x') });
      return craftZip(entries);
    },
  },
  {
    name: 'a pickle hidden between two entries',
    code: ErrorCode.PT2_AMBIGUOUS_ZIP,
    archive: () => craftWith(mlp, 'models/model.json', { before: pickle }),
  },
  {
    name: 'an Info-ZIP Unicode Path field giving a second name',
    code: ErrorCode.PT2_AMBIGUOUS_ZIP,
    archive: () =>
      craftWith(mlp, 'byteorder', {
        centralExtra: extraField(0x7075, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), Buffer.from('mlp/evil')])),
      }),
  },
  {
    name: 'a data descriptor that lies about the CRC-32',
    code: ErrorCode.PT2_AMBIGUOUS_ZIP,
    archive: () => {
      const lie = Buffer.alloc(16);
      lie.writeUInt32LE(0x08074b50, 0);
      lie.writeUInt32LE(0xdeadbeef, 4);
      lie.writeUInt32LE(6, 8);
      lie.writeUInt32LE(6, 12);
      return craftWith(mlp, 'byteorder', { descriptor: lie });
    },
  },
  {
    name: 'a higher-order op that loads a compiled .so (aoti_call_delegate)',
    code: ErrorCode.PT2_UNKNOWN_OP_NAMESPACE,
    archive: () =>
      program((p) => {
        graphOf(p).nodes[1].target = 'torch.ops.higher_order.aoti_call_delegate';
      }),
  },
  {
    name: 'a pytree spec whose enum makes torch.export.load import a module',
    code: ErrorCode.PT2_MALFORMED_PROGRAM,
    archive: () =>
      program((p) => {
        const signature = p.graph_module.module_call_graph[0].signature!;
        const spec = JSON.parse(signature.in_spec) as [number, { children_spec: Record<string, unknown>[] }];
        spec[1].children_spec[1].context = JSON.stringify([{ __enum__: true, fqn: 'this:s', name: 'x' }]);
        signature.in_spec = JSON.stringify(spec);
      }),
  },
  {
    name: 'a field torch does not define',
    code: ErrorCode.PT2_MALFORMED_PROGRAM,
    archive: () =>
      program((p) => {
        (p as unknown as Record<string, unknown>).payload = "__import__('os').system('id')";
      }),
  },
  {
    name: 'code in a shape expression',
    code: ErrorCode.PT2_BAD_SHAPE_EXPR,
    archive: () =>
      program((p) => {
        graphOf(p).tensor_values.x.sizes[0] = { as_expr: { expr_str: "__import__('os').system('id')" } };
      }),
  },
  {
    name: 'a weight stored as a pickle (use_pickle)',
    code: ErrorCode.PT2_PICKLED_DATA,
    archive: async () =>
      (await Pt2Files.from(mlp))
        .editPayloadConfig('weights', (c) => {
          c.config['net.0.weight'].use_pickle = true;
        })
        .build(),
  },
];

const errorOf = (body: unknown) => (body as { error: { code: string; message: string } }).error;

async function newModel(t: TestTenant, name: string): Promise<string> {
  const res = await api(app).post('/v1/models').set(t.auth).send({ name }).expect(201);
  return (res.body as { id: string }).id;
}

/** Nothing of the tenant in S3 (no upload left, no portable archive) and no version of the model. */
async function assertNothingStored(t: TestTenant, modelId: string): Promise<void> {
  const versions = await api(app).get(`/v1/models/${modelId}/versions`).set(t.auth).expect(200);
  assert.deepEqual(versions.body, []);
  assert.deepEqual(await s3.listKeys(`tenants/${t.id}/`), []);
}

async function uploadDirect(t: TestTenant, modelId: string, archive: Buffer) {
  return api(app)
    .post(`/v1/models/${modelId}/versions?filename=crafted.pt2`)
    .set(t.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(archive);
}

/** The presigned multipart path: create, sign one part, PUT it to S3 ourselves, complete. */
async function uploadMultipart(t: TestTenant, modelId: string, archive: Buffer) {
  const created = await api(app)
    .post(`/v1/models/${modelId}/uploads`)
    .set(t.auth)
    .send({ filename: 'crafted.pt2', sizeBytes: archive.length })
    .expect(201);
  const { uploadId, partCount } = created.body as { uploadId: string; partCount: number };
  assert.equal(partCount, 1);
  const sha256 = createHash('sha256').update(archive).digest('base64');
  const signed = await api(app)
    .post(`/v1/uploads/${uploadId}/parts`)
    .set(t.auth)
    .send({ parts: [{ partNumber: 1, sha256 }] })
    .expect(200);
  const [part] = (signed.body as { parts: { url: string; headers: Record<string, string> }[] }).parts;
  const put = await fetch(part.url, { method: 'PUT', headers: part.headers, body: archive });
  assert.equal(put.status, 200, await put.text());
  const completed = await api(app).post(`/v1/uploads/${uploadId}/complete`).set(t.auth).send({});
  return { completed, uploadId };
}

describe('crafted archives are refused on both upload paths, and nothing is stored', () => {
  ATTACKS.forEach((attack, i) => {
    test(`${attack.name} → ${attack.code}`, async () => {
      const archive = await attack.archive();
      // A tenant of its own: nothing else of it may be in S3 afterwards.
      const attacker = await createTenant(app, `attack-${i}`);

      const directModel = await newModel(attacker, 'direct');
      const direct = await uploadDirect(attacker, directModel, archive);
      assert.equal(direct.status, 422, JSON.stringify(direct.body));
      assert.equal(errorOf(direct.body).code, attack.code, errorOf(direct.body).message);
      await assertNothingStored(attacker, directModel);

      const multipartModel = await newModel(attacker, 'multipart');
      const { completed, uploadId } = await uploadMultipart(attacker, multipartModel, archive);
      assert.equal(completed.status, 422, JSON.stringify(completed.body));
      assert.equal(errorOf(completed.body).code, attack.code, errorOf(completed.body).message);
      const status = await api(app).get(`/v1/uploads/${uploadId}`).set(attacker.auth).expect(200);
      assert.equal((status.body as { status: string }).status, 'failed');
      await assertNothingStored(attacker, multipartModel);
    });
  });
});

describe('what a valid upload leaves in S3 holds no pickle', () => {
  interface VersionBody {
    id: string;
    fileSha256: string;
    sizeBytes: number;
    storedSha256: string;
    storedSizeBytes: number;
    contentHash: string;
  }

  async function assertPortable(version: VersionBody, name: string): Promise<void> {
    // The resolver hands devices the stored archive as the portable fallback.
    const resolved = await api(app)
      .post('/v1/resolve')
      .set(tenant.auth)
      .send({ model: name, fingerprint: AVX512_SERVER_FINGERPRINT })
      .expect(200);
    const fallback = (resolved.body as { fallback: { url: string; sha256: string; size: number } }).fallback;
    assert.equal(fallback.sha256, version.storedSha256);
    assert.equal(fallback.size, version.storedSizeBytes);
    const stored = Buffer.from(await (await fetch(fallback.url)).arrayBuffer());
    assert.equal(createHash('sha256').update(stored).digest('hex'), version.storedSha256);
    assert.equal(stored.length, version.storedSizeBytes);
    assert.equal(version.fileSha256, createHash('sha256').update(mlp).digest('hex'));
    assert.equal(version.sizeBytes, mlp.length);

    const before = await unzip(mlp);
    const after = await unzip(stored);
    assert.deepEqual(
      after.map((e) => e.name),
      before.map((e) => e.name),
    );
    const samples = after.filter((e) => e.name.includes('/data/sample_inputs/'));
    assert.equal(samples.length, 1);
    assert.equal(samples[0].data.length, 0, 'the sample-inputs pickle is gone');
    for (const [i, entry] of after.entries()) {
      if (!entry.name.includes('/data/sample_inputs/')) assert.ok(entry.data.equals(before[i].data), entry.name);
    }
    // Of the model, only the portable archive is left: the uploaded file (with its pickle) is deleted. (Its signed
    // manifest, JSON, joins it once the orchestrator has signed it.)
    const keys = await s3.listKeys(`tenants/${tenant.id}/versions/${version.id}`);
    assert.deepEqual(
      keys.filter((k) => k.endsWith('.pt2')),
      [`tenants/${tenant.id}/versions/${version.id}.portable.pt2`],
    );
  }

  test('direct upload', async () => {
    const modelId = await newModel(tenant, 'clean-direct');
    const res = await uploadDirect(tenant, modelId, mlp);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await assertPortable(res.body as VersionBody, 'clean-direct');
  });

  test('presigned multipart upload', async () => {
    const modelId = await newModel(tenant, 'clean-multipart');
    const { completed } = await uploadMultipart(tenant, modelId, mlp);
    assert.equal(completed.status, 200, JSON.stringify(completed.body));
    await assertPortable(completed.body as VersionBody, 'clean-multipart');
  });
});
