// node: one async function per user on Node's event loop; a stage's steps as Promise.allSettled.
//
// The same jobs as the Python models (docs/protocol.md): job i's draws from its own SplitMix64
// stream, the same CPU kernels and checksums, the wire protocol over `net` sockets pooled and
// opened before the clock starts, a try's timeout as an AbortSignal, a product's stock under an
// async mutex (Node has none built in: a promise queue), background steps as promises the
// program awaits before it writes its result. A promise cannot be cancelled: a stage waits for
// all its steps, as the threads model does. The python kernel's 64-bit LCG runs on 32-bit
// halves (Math.imul): BigInt allocates on every operation, and no one writes a hot loop in it.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const timers = require("node:timers/promises");

const MASK = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const LCG_A = 6364136223846793005n;
const LCG_C = 1442695040888963407n;
const Z99 = 2.3263478740408408;
const STOCK_START = 10n ** 12n;
const MIN_DRAIN_S = 5.0;
const MOST_DELAY_US = 0x40ffffff;
const OK = 0, FAILED = 1, TIMED_OUT = 2, LOST = 3;
const NATIVE_BLOCK = Buffer.alloc(16384, 0).map((_, i) => i % 256);
const ORDER_ITEMS = 4;

class StepFailed extends Error {}
class TimedOut extends Error {}

const now = () => Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC, as perf_counter

function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  run(spec).then(
    (result) => fs.writeFileSync(spec.out, JSON.stringify(result)),
    (error) => {
      process.stderr.write(`${error.stack || error}\n`);
      process.exit(1);
    },
  );
}

async function run(spec) {
  const shared = {
    spec,
    products: products(spec.scenario),
    idle: [],
    records: [], background: [], handedOff: [], retried: [], sold: [], discarded: [], errors: [],
    handed: new Set(),
    next: 0,
  };
  shared.stock = Array(shared.products).fill(STOCK_START);
  shared.locks = Array.from({ length: shared.products }, () => new Mutex());
  if (spec.service) {
    const width = Math.max(...spec.scenario.stages.map((s) => s.steps.filter((t) => t.type === "io").length), 0);
    const opened = [];
    for (let i = 0; i < spec.concurrency * width; i++) opened.push(connect(spec.service));
    shared.idle.push(...(await Promise.all(opened)));
  }
  await startUsers(shared);
  for (const conn of shared.idle) conn.socket.destroy();
  return {
    records: shared.records,
    background: shared.background,
    handed_off: shared.handedOff,
    retried: shared.retried,
    sold: shared.sold,
    stock: shared.stock.map(String),
    discarded: shared.discarded,
    errors: shared.errors,
  };
}

async function startUsers(shared) {
  const spec = shared.spec;
  shared.started = now();
  shared.stop = shared.started + spec.warmup_s + spec.duration_s;
  process.stdout.write(`start ${shared.started}\n`);
  const users = [];
  for (let user = 0; user < spec.concurrency; user++) users.push(serve(user, shared));
  await Promise.all(users);
  while (shared.handed.size) await Promise.all([...shared.handed]); // background work drains
}

async function serve(user, shared) {
  const spec = shared.spec;
  const ramp = spec.ramp_s === null ? spec.warmup_s : spec.ramp_s;
  const first = spec.arrivals ? shared.started : shared.started + (ramp * user) / spec.concurrency;
  await sleepUntil(first);
  for (;;) {
    const index = shared.next++;
    if (!take(index, shared)) return;
    const taken = now();
    let submitted = taken;
    if (spec.arrivals) {
      submitted = shared.started + spec.arrivals[index];
      await sleepUntil(submitted);
    }
    const started = now();
    const [checksum, outcome] = await runJob(drawJob(spec, index), shared);
    shared.records.push([index, submitted, started, now(), checksum.toString(), outcome,
      spec.arrivals ? taken : null]);
  }
}

// libuv's timers count whole milliseconds from the loop's cached time, so one may fire a
// little early: sleep again for what is left.
async function sleepUntil(at) {
  for (let left = at - now(); left > 0; left = at - now()) await timers.setTimeout(left * 1000);
}

function take(index, shared) {
  const spec = shared.spec;
  const t = now();
  const over =
    (spec.max_jobs !== null && index >= spec.max_jobs) ||
    (!spec.arrivals && t >= shared.stop) ||
    (spec.arrivals &&
      (index >= spec.arrivals.length ||
        shared.started + spec.arrivals[index] >= shared.stop ||
        t >= shared.stop + Math.max(spec.duration_s, MIN_DRAIN_S)));
  if (over) shared.discarded.push(index);
  return !over;
}

async function runJob(job, shared) {
  const results = [];
  try {
    for (let s = 0; s < job.stages.length; s++) results.push(await runStage(job.stages[s], s, shared));
  } catch (error) {
    return [0n, outcomeOf(error, shared)];
  }
  return [combine(results), OK];
}

async function runStage(stage, s, shared) {
  stage.forEach((action, k) => {
    if (action.background) handOff(action, s, k, shared);
  });
  const steps = stage.filter((action) => !action.background);
  const settled = await Promise.allSettled(steps.map((action) => runStep(action, shared)));
  const failed = settled.filter((r) => r.status === "rejected");
  if (failed.length) {
    const worst = failed.map((r) => r.reason).sort((a, b) => outcomeOf(b) - outcomeOf(a))[0];
    throw worst;
  }
  return combine(settled.map((r) => r.value));
}

function handOff(action, s, k, shared) {
  const handed = now();
  shared.handedOff.push(action.job);
  const step = runStep(action, shared).then(
    (checksum) => [checksum, OK],
    (error) => [0n, outcomeOf(error, shared)],
  ).then(([checksum, outcome]) => {
    shared.background.push([action.job, s, k, handed, now(), checksum.toString(), outcome]);
    shared.handed.delete(step);
  });
  shared.handed.add(step);
}

async function runStep(action, shared) {
  if (action.product === null) return action.io ? runAttempts(action, shared) : doCpu(action);
  const release = await shared.locks[action.product].acquire();
  try {
    const level = shared.stock[action.product];
    const result = action.io ? await runAttempts(action, shared) : doCpu(action);
    shared.stock[action.product] = level - 1n;
    shared.sold.push(action.product);
    return result;
  } finally {
    release();
  }
}

async function runAttempts(wait, shared) {
  for (let k = 0; ; k++) {
    const attempt = wait.attempts[k];
    if (k > 0) {
      shared.retried.push(wait.job);
      await timers.setTimeout(attempt.backoff_s * 1000);
    }
    try {
      return await doIo(wait, attempt, shared);
    } catch (error) {
      const retryable = error instanceof StepFailed || error instanceof TimedOut;
      if (!retryable || k === wait.attempts.length - 1) throw error;
    }
  }
}

async function doIo(wait, attempt, shared) {
  const signal = wait.timeout_s === null ? undefined : AbortSignal.timeout(wait.timeout_s * 1000);
  const service = shared.spec.service;
  if (!service) {
    try {
      await timers.setTimeout(attempt.seconds * 1000, undefined, { signal });
    } catch (error) {
      if (error.name === "AbortError") throw new TimedOut("no answer before the timeout");
      throw error;
    }
    if (attempt.fails) throw new StepFailed();
    return BigInt(wait.response_bytes);
  }
  const conn = shared.idle.pop() || (await connect(service));
  const header = Buffer.alloc(13);
  header.writeUInt32BE(Math.min(roundHalfEven(attempt.seconds * 1e6), MOST_DELAY_US), 0);
  header.writeUInt32BE(wait.response_bytes, 4);
  header.writeUInt32BE(wait.request_bytes, 8);
  header.writeUInt8(attempt.fails ? 1 : 0, 12);
  let failed, size;
  try {
    conn.socket.write(Buffer.concat([header, Buffer.alloc(wait.request_bytes)]));
    const answer = await conn.read(5, signal);
    failed = answer.readUInt8(0);
    size = answer.readUInt32BE(1);
    if (failed > 1 || size !== wait.response_bytes) {
      throw new Error(`the answer is not the latency service's (failed=${failed}, ${size} bytes)`);
    }
    await conn.read(size, signal);
  } catch (error) {
    conn.socket.destroy(); // cancelled or broken mid-request: the answer may still come
    throw error;
  }
  shared.idle.push(conn);
  if (failed) throw new StepFailed();
  return BigInt(size);
}

function doCpu(work) {
  if (work.kind === "python") return burnPython(work.units, work.seed);
  if (work.kind === "json") return burnJson(work.units, work.seed);
  return burnNative(work.units);
}

function outcomeOf(error, shared) {
  if (error instanceof StepFailed) return FAILED;
  if (error instanceof TimedOut) return TIMED_OUT;
  if (shared && shared.errors.length < 5) shared.errors.push(String(error && error.message ? error.message : error));
  return LOST;
}

// A connection to the service, read through a buffer: an answer's header and body usually
// arrive together.
class Connection {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.waiting = null;
    socket.on("data", (chunk) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      this.settle();
    });
    socket.on("close", () => this.fail(new Error("the service closed the connection")));
    socket.on("error", (error) => this.fail(error));
  }

  read(size, signal) {
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new TimedOut("no answer before the timeout"));
      if (signal) signal.addEventListener("abort", onAbort, { once: true });
      this.waiting = { size, resolve, reject, signal, onAbort };
      this.settle();
    });
  }

  settle() {
    const w = this.waiting;
    if (w && this.buffer.length >= w.size) {
      this.waiting = null;
      if (w.signal) w.signal.removeEventListener("abort", w.onAbort);
      const data = this.buffer.subarray(0, w.size);
      this.buffer = this.buffer.subarray(w.size);
      w.resolve(data);
    }
  }

  fail(error) {
    const w = this.waiting;
    if (w) {
      this.waiting = null;
      w.reject(error);
    }
  }
}

function connect([host, port]) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host, port, noDelay: true }, () => {
      socket.off("error", reject);
      resolve(new Connection(socket));
    });
    socket.once("error", reject);
  });
}

class Mutex {
  constructor() {
    this.tail = Promise.resolve();
  }

  acquire() {
    let release;
    const held = new Promise((resolve) => (release = resolve));
    const ready = this.tail.then(() => release);
    this.tail = this.tail.then(() => held);
    return ready;
  }
}

// ---- The workload: job i's draws, the kernels, the checksums (docs/protocol.md) ----

function mix64(z) {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

class Stream {
  constructor(seed, index) {
    this.state = mix64(mix64(BigInt(seed) & MASK) ^ BigInt(index));
  }

  bits() {
    this.state = (this.state + GOLDEN) & MASK;
    return mix64(this.state);
  }

  random() {
    return Number(this.bits() >> 11n) * 2 ** -53;
  }

  choice(cum) {
    const x = this.random() * cum[cum.length - 1];
    let lo = 0, hi = cum.length - 1; // bisect_right(cum, x, 0, len - 1)
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x < cum[mid]) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

function drawMs(dist, rng) {
  if (dist.kind === "uniform") return dist.low_ms + (dist.high_ms - dist.low_ms) * rng.random();
  if (dist.kind === "lognormal") {
    const mu = Math.log(dist.p50_ms);
    const sigma = Math.log(dist.p99_ms / dist.p50_ms) / Z99;
    const radius = Math.sqrt(-2.0 * Math.log(1.0 - rng.random()));
    return Math.exp(mu + sigma * radius * Math.cos(2.0 * Math.PI * rng.random()));
  }
  if (dist.kind === "constant" || dist.mean_ms === 0) return dist.mean_ms;
  return -Math.log(1.0 - rng.random()) / (1.0 / dist.mean_ms);
}

const popularities = new Map();
function popularity(lock) {
  const key = `${lock.products}:${lock.skew}`;
  if (!popularities.has(key)) {
    const cum = [];
    let sum = 0;
    for (let rank = 1; rank <= lock.products; rank++) cum.push((sum += 1.0 / rank ** lock.skew));
    popularities.set(key, cum);
  }
  return popularities.get(key);
}

function drawJob(spec, index) {
  const rng = new Stream(spec.seed, index);
  const rates = {
    python: spec.calibration.python_iterations_per_ms,
    native: spec.calibration.native_blocks_per_ms,
    json: spec.calibration.json_orders_per_ms,
  };
  return {
    index,
    stages: spec.scenario.stages.map((stage) =>
      stage.steps.map((step) => {
        const product = step.lock ? rng.choice(popularity(step.lock)) : null;
        if (step.type === "io") {
          const attempts = [];
          for (let k = 0; k <= step.retries; k++) {
            const seconds = drawMs(step.wait, rng) / 1000.0;
            const fails = rng.random() < step.fail_rate;
            attempts.push({ seconds, fails, backoff_s: k ? (step.backoff_ms * 2 ** (k - 1)) / 1000.0 : 0 });
          }
          return {
            io: true, job: index, attempts, product, background: step.background,
            timeout_s: step.timeout_ms === null ? null : step.timeout_ms / 1000.0,
            request_bytes: step.request_bytes, response_bytes: step.response_bytes,
          };
        }
        const units = roundHalfEven(drawMs(step.cpu, rng) * rates[step.kind]);
        return { io: false, job: index, kind: step.kind, units, seed: rng.bits(), product, background: step.background };
      }),
    ),
  };
}

function roundHalfEven(x) {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

function combine(values) {
  let acc = 0n;
  for (const value of values) acc = ((acc * 1000003n) ^ BigInt(value)) & MASK;
  return acc;
}

// The 64-bit LCG on 32-bit halves: x = x * A + C mod 2^64.
const A_HI = Number(LCG_A >> 32n), A_LO = Number(LCG_A & 0xffffffffn);
const C_HI = Number(LCG_C >> 32n), C_LO = Number(LCG_C & 0xffffffffn);

function mulHigh32(a, b) {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const mid = a1 * b0 + a0 * b1 + Math.floor((a0 * b0) / 65536);
  return a1 * b1 + Math.floor(mid / 65536);
}

function burnPython(iterations, seed) {
  let hi = Number(seed >> 32n), lo = Number(seed & 0xffffffffn);
  for (let i = 0; i < iterations; i++) {
    const high = (mulHigh32(lo, A_LO) + Math.imul(hi, A_LO) + Math.imul(lo, A_HI)) >>> 0;
    const low = (Math.imul(lo, A_LO) >>> 0) + C_LO;
    lo = low >>> 0;
    hi = (high + C_HI + (low > 0xffffffff ? 1 : 0)) >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

function burnNative(blocks) {
  const digest = crypto.createHash("sha256");
  for (let i = 0; i < blocks; i++) digest.update(NATIVE_BLOCK);
  return digest.digest().readBigUInt64BE(0);
}

const pad = (n, width) => String(n).padStart(width, "0");
const money = (cents, width) => (cents / 100).toFixed(2).padStart(width, " ");

function receipt(id, email, items, cents, currency) {
  const lines = items.map((i) => `${pad(i.quantity, 2)} x ${i.sku} at ${money(i.price_cents, 8)}`);
  return `Order ${pad(id, 20)}\nCustomer ${email}\n${lines.join("\n")}\nTotal ${money(cents, 10)} ${currency}\n`;
}

const RECEIPT_BYTES = receipt(
  "0", "c00000@example.com",
  Array(ORDER_ITEMS).fill({ quantity: 1, sku: "SKU-00000", price_cents: 0 }), 0, "EUR",
).length;

// 64-bit ids travel as decimal strings: a JavaScript number holds 53 bits exactly.
function burnJson(orders, seed) {
  let x = seed;
  for (let n = 0; n < orders; n++) {
    const items = [];
    for (let k = 0n; k < BigInt(ORDER_ITEMS); k++) {
      items.push({
        sku: `SKU-${pad(Number((x >> (16n * k)) & 0xffffn), 5)}`,
        quantity: 1 + Number((x >> (16n * k + 8n)) & 3n),
        price_cents: 100 + Number((x >> (16n * k + 4n)) & 0x3ffn),
      });
    }
    const order = {
      id: x.toString(),
      customer: { email: `c${pad(Number(x & 0xffffn), 5)}@example.com`, country: "FR" },
      currency: "EUR",
      items,
    };
    const decoded = JSON.parse(JSON.stringify(order));
    const cents = decoded.items.reduce((sum, i) => sum + i.quantity * i.price_cents, 0);
    const text = receipt(decoded.id, decoded.customer.email, decoded.items, cents, decoded.currency);
    x = (BigInt(decoded.id) * LCG_A + LCG_C + BigInt(text.length - RECEIPT_BYTES)) & MASK;
  }
  return x;
}

function products(scenario) {
  let most = 0;
  for (const stage of scenario.stages) for (const step of stage.steps) if (step.lock) most = Math.max(most, step.lock.products);
  return most;
}

main();
