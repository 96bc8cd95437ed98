import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ApiClient, ApiError } from './client.js';
import { createQueryClient, modelQuery, queryKeys } from './queries.js';

const realFetch = globalThis.fetch;

/** Answers the dashboard's calls from a list, one a call, and counts them. */
function answerWith(...answers: { status: number; body: unknown }[]): { calls: () => number } {
  let calls = 0;
  globalThis.fetch = () => {
    const a = answers[Math.min(calls++, answers.length - 1)];
    return Promise.resolve(new Response(JSON.stringify(a.body), { status: a.status }));
  };
  return { calls: () => calls };
}

const model = { id: 'm1', name: 'mlp' };

describe('dashboard queries', () => {
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  test("a 4xx is not asked again, and the API's code and message reach the page unchanged", async () => {
    const fake = answerWith({ status: 404, body: { error: { code: 'MODEL_NOT_FOUND', message: 'No model m1.' } } });
    const client = createQueryClient();
    const err = await client.fetchQuery(modelQuery(new ApiClient('k'), 'm1')).catch((e: unknown) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, 'MODEL_NOT_FOUND');
    assert.equal(err.message, 'No model m1.');
    assert.equal(fake.calls(), 1);
  });

  test('a 401 signs out once and is not asked again', async () => {
    const fake = answerWith({ status: 401, body: { error: { code: 'UNAUTHENTICATED', message: 'Bad key.' } } });
    let signedOut = 0;
    const client = createQueryClient();
    await assert.rejects(client.fetchQuery(modelQuery(new ApiClient('k', () => signedOut++), 'm1')));
    assert.equal(signedOut, 1);
    assert.equal(fake.calls(), 1);
  });

  test('a 5xx is asked again, and the answer that follows is the data', async () => {
    const fake = answerWith(
      { status: 503, body: { error: { code: 'UNAVAILABLE', message: 'Busy.' } } },
      { status: 200, body: model },
    );
    const client = createQueryClient();
    assert.deepEqual(await client.fetchQuery(modelQuery(new ApiClient('k'), 'm1')), model);
    assert.equal(fake.calls(), 2);
  });

  test("invalidating a model covers its versions, channels, histories and fleets, and no other model's", () => {
    const client = createQueryClient();
    const mine = [
      queryKeys.model('m1'),
      queryKeys.modelVersions('m1'),
      queryKeys.channels('m1'),
      queryKeys.channelHistory('m1', 'prod'),
      queryKeys.fleet('m1', 'prod'),
    ];
    const others = [queryKeys.model('m2'), queryKeys.modelVersions('m2'), queryKeys.compilationList({})];
    for (const key of [...mine, ...others]) client.setQueryData(key, []);
    void client.invalidateQueries({ queryKey: queryKeys.model('m1') });
    for (const key of mine) assert.equal(client.getQueryState(key)?.isInvalidated, true, JSON.stringify(key));
    for (const key of others) assert.equal(client.getQueryState(key)?.isInvalidated, false, JSON.stringify(key));
  });

  test("every compilation list is under the lists' key, and no single compilation is", () => {
    const client = createQueryClient();
    for (const key of [
      queryKeys.compilationList({}),
      queryKeys.compilationList({ versionId: 'v1' }),
      queryKeys.compilation('c1'),
    ])
      client.setQueryData(key, []);
    void client.invalidateQueries({ queryKey: queryKeys.compilationLists() });
    assert.equal(client.getQueryState(queryKeys.compilationList({}))?.isInvalidated, true);
    assert.equal(client.getQueryState(queryKeys.compilationList({ versionId: 'v1' }))?.isInvalidated, true);
    assert.equal(client.getQueryState(queryKeys.compilation('c1'))?.isInvalidated, false);
  });
});
