// PythonRandom against independent references: the MT19937 reference output (mt19937ar.out) and values produced by
// CPython 3.11's `random` module (run once by hand, hard-coded below with the Python line that made them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PythonRandom } from '../../src/calib/python-random.js';

test('init_by_array({0x123, 0x234, 0x345, 0x456}) gives the mt19937ar.out stream', () => {
  const r = new PythonRandom();
  r.initByArray([0x123, 0x234, 0x345, 0x456]);
  // First five genrand_int32() outputs printed in Matsumoto & Nishimura's mt19937ar.out.
  assert.deepEqual([r.nextUint32(), r.nextUint32(), r.nextUint32(), r.nextUint32(), r.nextUint32()],
    [1067595299, 955945823, 477289528, 4107218783, 4228976476]);
});

test('random.seed(int) splits the int into 32-bit words, least significant first', () => {
  // An int whose words are 0x123, 0x234, 0x345, 0x456 must seed exactly like init_by_array on those words.
  const r = new PythonRandom(0x456_00000345_00000234_00000123n);
  assert.deepEqual([0, 1, 2, 3, 4].map(() => Number(r.getrandbits(32))),
    [1067595299, 955945823, 477289528, 4107218783, 4228976476]);
  // CPython: random.seed(0); [random.getrandbits(32) for _ in range(3)]
  const z = new PythonRandom(0);
  assert.deepEqual([0, 1, 2].map(() => z.nextUint32()), [3626764237, 1654615998, 3255389356]);
  // CPython: random.seed(2**32); [random.getrandbits(32) for _ in range(2)]  (key [0, 1])
  const big = new PythonRandom(2 ** 32);
  assert.deepEqual([big.nextUint32(), big.nextUint32()], [485306839, 1508871100]);
});

test('randint matches CPython', () => {
  // CPython: random.seed(0); [random.randint(0, 1000) for _ in range(10)]
  const r = new PythonRandom(0);
  assert.deepEqual(Array.from({ length: 10 }, () => r.randint(0, 1000)), [864, 394, 776, 911, 430, 41, 265, 988, 523, 497]);
  // CPython: random.seed(-7); [random.randint(0, 10) for _ in range(5)]   (negative seed -> |seed|)
  const n = new PythonRandom(-7);
  assert.deepEqual(Array.from({ length: 5 }, () => n.randint(0, 10)), [5, 2, 6, 10, 0]);
  // CPython: random.seed(2**40+5); [random.randint(0, 2**40) for _ in range(4)]   (41-bit draws: two words each)
  const w = new PythonRandom(2 ** 40 + 5);
  assert.deepEqual(Array.from({ length: 4 }, () => w.randint(0, 2 ** 40)), [64105765088, 102613415019, 172509342378, 524560929935]);
  // CPython: random.seed(0); [random.randrange(0, 3) for _ in range(12)]   (rejections: 2 bits, 3 is redrawn)
  const s = new PythonRandom(0);
  assert.deepEqual(Array.from({ length: 12 }, () => s.randrange(0, 3)), [1, 1, 0, 1, 2, 1, 1, 1, 1, 1, 2, 0]);
  // CPython: random.seed(123); [random.randint(5, 5) for _ in range(2)], random.getrandbits(32)
  // randint(a, a) still consumes one 1-bit draw per call.
  const one = new PythonRandom(123);
  assert.deepEqual([one.randint(5, 5), one.randint(5, 5), Number(one.getrandbits(32))], [5, 5, 374463918]);
});

test('getrandbits and random match CPython', () => {
  // CPython: random.seed(1); [random.getrandbits(k) for k in (1, 7, 31, 32, 33, 64, 100)]
  const r = new PythonRandom(1);
  assert.deepEqual([1, 7, 31, 32, 33, 64, 100].map((k) => r.getrandbits(k)),
    [0n, 72n, 1819850095n, 3445702192n, 3280387012n, 2175216119781798972n, 590209488520255358040687302011n]);
  // CPython: random.seed(42); [random.random() for _ in range(3)]
  const f = new PythonRandom(42);
  assert.deepEqual([f.random(), f.random(), f.random()], [0.6394267984578837, 0.025010755222666936, 0.27502931836911926]);
  // CPython: random.seed(0); [random.random() for _ in range(2)]
  const g = new PythonRandom(0);
  assert.deepEqual([g.random(), g.random()], [0.8444218515250481, 0.7579544029403025]);
});

test('empty ranges are errors, as in Python', () => {
  const r = new PythonRandom(0);
  assert.throws(() => r.randint(0, -1), /empty range in randrange\(0, 0\)/);
  assert.throws(() => r.randrange(3, 1), /empty range/);
  assert.throws(() => r.getrandbits(-1), /non-negative/);
});
