import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GpuSlotPool, gpuEnvironment } from './gpu-slots.js';

describe('GpuSlotPool', () => {
  it('hands out each GPU once, lowest index first, and takes it back', () => {
    const pool = new GpuSlotPool('9.0', [3, 1]);
    const a = pool.tryAcquire();
    const b = pool.tryAcquire();
    assert.deepEqual([a?.index, b?.index], [1, 3]);
    assert.equal(pool.tryAcquire(), null);
    a?.release();
    a?.release(); // idempotent: the GPU is not handed out twice
    assert.equal(pool.available, 1);
    assert.equal(pool.tryAcquire()?.index, 1);
    assert.equal(pool.tryAcquire(), null);
  });

  it('queues builds when every GPU is taken, first come first served', async () => {
    const pool = new GpuSlotPool('9.0', [0]);
    const first = await pool.acquire();
    const order: string[] = [];
    const second = pool.acquire().then((l) => (order.push('second'), l));
    const third = pool.acquire().then((l) => (order.push('third'), l));
    assert.equal(pool.waiting, 2);
    first.release();
    const l2 = await second;
    assert.equal(l2.index, 0);
    assert.deepEqual(order, ['second']);
    l2.release();
    assert.equal((await third).index, 0);
    assert.deepEqual(order, ['second', 'third']);
  });

  it('a cancelled build stops waiting and takes no GPU', async () => {
    const pool = new GpuSlotPool('9.0', [0]);
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire(controller.signal);
    controller.abort(new Error('build cancelled'));
    await assert.rejects(waiting, /build cancelled/);
    assert.equal(pool.waiting, 0);
    held.release();
    assert.equal(pool.available, 1);
    await assert.rejects(pool.acquire(controller.signal), /build cancelled/);
  });

  it('pins the build to its GPU in nvidia-smi order', () => {
    const pool = new GpuSlotPool('8.0', [8, 9]);
    assert.deepEqual(gpuEnvironment(pool.tryAcquire()!), {
      CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
      CUDA_VISIBLE_DEVICES: '8',
    });
    assert.throws(() => new GpuSlotPool('8.0', [1, 1]), /duplicate/);
  });
});
