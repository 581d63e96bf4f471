/**
 * `kmcast wait` needs no privilege: it runs as uid/gid 65532 with an empty capability bounding
 * set and no_new_privs (what the injected init container's securityContext gives it), and still
 * waits through an agent that is down, then starts once the agent reports the pod programmed.
 * The baseline first: the same sandbox really holds no capability (CapEff/CapBnd are 0 and
 * creating a link is refused), so the pass proves the wait needs none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { needRoot, testLabId } from './harness.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const POD = '10.244.7.9';
const SANDBOX = ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

test('kmcast wait runs with no capability as uid 65532: waits through a down agent, exits 0 once programmed', async (t) => {
  if (!needRoot(t)) return;
  // Baseline: the sandbox holds nothing.
  const status = spawnSync(SANDBOX[0]!, [...SANDBOX.slice(1), 'cat', '/proc/self/status'], { encoding: 'utf8' });
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
  assert.match(status.stdout, /^CapEff:\s+0+$/m);
  assert.match(status.stdout, /^CapBnd:\s+0+$/m);
  assert.match(status.stdout, /^NoNewPrivs:\s+1$/m);
  const name = `kmc${testLabId('w')}`;
  const denied = spawnSync(SANDBOX[0]!, [...SANDBOX.slice(1), 'ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`], { encoding: 'utf8' });
  if (denied.status === 0) spawnSync('ip', ['link', 'del', name]);
  assert.notEqual(denied.status, 0, 'the sandbox must not be able to create a link');
  assert.match(denied.stderr, /Operation not permitted/);

  // The agent is down when the pod starts: reserve a port and leave it closed.
  const probe = createServer();
  const port = await listen(probe);
  await new Promise<void>((r) => probe.close(() => r()));

  const wait = spawn(SANDBOX[0]!, [...SANDBOX.slice(1), process.execPath, MAIN, 'wait', '--timeout', '60s', '--interval', '200ms'], {
    env: { PATH: process.env.PATH ?? '', KMCAST_NODE_IP: '127.0.0.1', KMCAST_PORT: String(port), KMCAST_POD_IP: POD },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => wait.on('close', resolve));
  const seen = (re: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`not seen within 20 s: ${re}\n${stderr}`)), 20_000);
      const check = (): void => {
        if (re.test(stderr)) {
          clearTimeout(deadline);
          wait.stderr.off('data', check);
          resolve();
        }
      };
      wait.stderr.on('data', check);
      check();
    });
  wait.stderr.on('data', (c: Buffer) => (stderr += c.toString()));

  let programmed = false;
  const agent = createServer((req, res) => {
    const body = JSON.stringify(req.url === `/v1/pods/${POD}` ? { podIp: POD, programmed, ...(programmed ? { domain: 'd' } : { reason: 'pending' }) } : {});
    res.writeHead(req.url === `/v1/pods/${POD}` ? 200 : 404, { 'content-type': 'application/json' });
    res.end(body);
  });
  try {
    await seen(/unreachable \(ECONNREFUSED\)/);
    await listen(agent, port);
    await seen(/is installing its capture and delivery/);
    assert.equal(wait.exitCode, null, 'still waiting while the agent says pending');
    programmed = true;
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /pod 10\.244\.7\.9 is programmed in domain d/);
  } finally {
    wait.kill();
    await new Promise<void>((r) => agent.close(() => r()));
  }
});
