/**
 * The webhook under bad conditions: start-up with bad TLS files or a bad address (exit 2 naming
 * the flag, no stack), hostile or odd AdmissionReviews (a clear answer), connections that never
 * handshake (closed, capped) and clients that go away (not an error).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../../src/log.js';
import { DEFAULT_AGENT_OPTIONS, INJECT_LABEL } from '../../../src/manifests/sidecar.js';
import { handleAdmissionReview } from '../../../src/manifests/webhook.js';
import { startWebhookServer } from '../../../src/manifests/webhook-server.js';
import { ROOT } from './fixtures.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let dir: string;
const OPTS = { ...DEFAULT_AGENT_OPTIONS, strict: false };

function makeCert(name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=kmcast-webhook',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

let a: { cert: string; key: string };
let b: { cert: string; key: string };
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kmc-webhook-h-'));
  a = makeCert('a');
  b = makeCert('b');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `kmcast webhook`; resolves with its exit once it exits, or 'running' after `ms`. */
function runWebhook(args: string[], ms = 8000): Promise<{ status: number | 'running'; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [`${ROOT}dist/src/cli/main.js`, 'webhook', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => {
      p.kill('SIGTERM');
      resolve({ status: 'running', stderr });
    }, ms);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ status: code ?? -1, stderr });
    });
  });
}

function assertFlagError(r: { status: number | 'running'; stderr: string }, re: RegExp, what: string): void {
  assert.equal(r.status, 2, `${what}: ${r.status}\n${r.stderr}`);
  assert.match(r.stderr, /^kmcast: [^\n]+\n$/, `${what}: one line, no stack:\n${r.stderr}`);
  assert.match(r.stderr, re, what);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('webhook start-up: bad PEM, cert/key mismatch, address in use or not available exit 2 naming the flag', async () => {
  const addr = `127.0.0.1:${await freePort()}`;
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  assertFlagError(await runWebhook(['--tls-cert', junk, '--tls-key', a.key, '--addr', addr]), /--tls-cert: .*junk\.pem.*not a PEM certificate/, 'bad cert');
  assertFlagError(await runWebhook(['--tls-cert', a.cert, '--tls-key', junk, '--addr', addr]), /--tls-key: .*junk\.pem.*not a PEM private key/, 'bad key');
  assertFlagError(await runWebhook(['--tls-cert', a.cert, '--tls-key', b.key, '--addr', addr]), /--tls-key: .*does not match the certificate in --tls-cert/, 'mismatch');
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  try {
    const port = (busy.address() as AddressInfo).port;
    assertFlagError(await runWebhook(['--tls-cert', a.cert, '--tls-key', a.key, '--addr', `127.0.0.1:${port}`]), /--addr: 127\.0\.0\.1:\d+ is already in use/, 'in use');
  } finally {
    busy.close();
  }
  assertFlagError(await runWebhook(['--tls-cert', a.cert, '--tls-key', a.key, '--addr', '192.0.2.1:8443']), /--addr: 192\.0\.2\.1:8443 is not an address of this host/, 'not available');
  // The good case still starts and keeps running.
  assert.equal((await runWebhook(['--tls-cert', a.cert, '--tls-key', a.key, '--addr', addr], 2500)).status, 'running');
});

const review = (object: unknown, labels = true): Obj => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'u1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    object: labels && object && typeof object === 'object' ? { ...object, metadata: { labels: { [INJECT_LABEL]: 'enabled' } } } : object,
  },
});

test('a 5,000-deep pod gets a clear answer: not injected, with the reason (denied under --strict)', () => {
  let deep: Obj = {};
  const root = deep;
  for (let i = 0; i < 5000; i++) deep = deep.x = {};
  const pod = { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'a', image: 'b', env: [{ name: 'X', value: 'y' }], deep: root }] } };
  const r = handleAdmissionReview(review(pod), OPTS);
  assert.equal(r.status, 200);
  const resp = r.body.response as Obj;
  assert.equal(resp.allowed, true);
  assert.equal(resp.patch, undefined);
  assert.equal(resp.status, undefined, 'no silent 500');
  assert.match(resp.warnings[0] as string, /nested deeper than \d+ levels/);
  const strict = handleAdmissionReview(review(pod), { ...OPTS, strict: true }).body.response as Obj;
  assert.equal(strict.allowed, false);
  assert.equal(strict.status.code, 422);
  assert.match(strict.status.message as string, /nested deeper than/);
});

test('request.object null: a pod that is not opted in is admitted; an opted-in pod without a spec gets the reason', () => {
  const r = handleAdmissionReview(review(null, false), OPTS).body.response as Obj;
  assert.equal(r.allowed, true, JSON.stringify(r));
  const noSpec = handleAdmissionReview(review({ apiVersion: 'v1', kind: 'Pod' }), OPTS).body.response as Obj;
  assert.equal(noSpec.allowed, true);
  assert.match(noSpec.warnings[0] as string, /no spec/);
  const strict = handleAdmissionReview(review({ apiVersion: 'v1', kind: 'Pod' }), { ...OPTS, strict: true }).body.response as Obj;
  assert.equal(strict.allowed, false);
});

function captureLogger(): { log: Logger; lines: Obj[] } {
  const lines: Obj[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Obj);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream) as unknown as Logger, lines };
}

const waitFor = async (what: string, cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('connections that never handshake are closed after the handshake timeout, and their number is capped', async () => {
  const { log } = captureLogger();
  const srv = await startWebhookServer({ cert: readFileSync(a.cert), key: readFileSync(a.key) }, { host: '127.0.0.1', port: 0 }, OPTS, log, { handshakeTimeoutMs: 300, maxConnections: 4 });
  const open: Socket[] = [];
  try {
    const t0 = Date.now();
    const raw = connect(srv.port, '127.0.0.1');
    open.push(raw);
    let closedAt = 0;
    raw.on('close', () => (closedAt = Date.now()));
    raw.on('error', () => undefined);
    await waitFor('the silent connection to be closed', () => closedAt > 0, 10_000);
    assert.ok(closedAt - t0 < 5000, `closed after ${closedAt - t0} ms`);

    // Four silent connections fill the cap; the fifth is refused at once.
    const closed: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      const s = connect(srv.port, '127.0.0.1');
      open.push(s);
      closed.push(false);
      s.on('close', () => (closed[i] = true));
      s.on('error', () => undefined);
      await new Promise<void>((r) => s.once('connect', () => r()));
      await new Promise((r) => setTimeout(r, 30));
    }
    await waitFor('the connection beyond the cap to be closed', () => closed[4] === true, 250);
    assert.deepEqual(closed.slice(0, 4), [false, false, false, false], 'within the cap they wait for the handshake timeout');
  } finally {
    for (const s of open) s.destroy();
    await srv.close();
  }
});

test('a client that goes away mid-request is logged at debug level, not as an error with a stack', async () => {
  const { log, lines } = captureLogger();
  const srv = await startWebhookServer({ cert: readFileSync(a.cert), key: readFileSync(a.key) }, { host: '127.0.0.1', port: 0 }, OPTS, log);
  try {
    await new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port: srv.port,
        path: '/mutate',
        method: 'POST',
        ca: readFileSync(a.cert),
        headers: { 'content-length': '100000', 'content-type': 'application/json' },
      });
      req.on('error', () => resolve());
      req.write('{"apiVersion":');
      setTimeout(() => req.destroy(), 200);
    });
    await waitFor('the abort to be logged', () => lines.some((l) => /client/.test(String(l.msg))));
    assert.deepEqual(
      lines.filter((l) => (l.level as number) >= 50),
      [],
      'nothing at error level',
    );
    const line = lines.find((l) => /client/.test(String(l.msg)))!;
    assert.equal(line.level, 20);
    assert.equal(line.err?.stack, undefined);
  } finally {
    await srv.close();
  }
});
