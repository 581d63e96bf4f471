/**
 * Sends random and mutated control datagrams at a live agent, run inside a lab pod by
 * membership.test.ts: `node fuzz-sender.js TARGET PORT COUNT SEED KEYHEX CLUSTER`. The corpus is
 * valid STATE and LEAVE datagrams (signed with the right key but claiming other senders, so a
 * clean one is refused as spoofed), replays of them, truncations, bit flips and noise.
 * Paced in small batches so the agent's socket buffer, not the sender, decides what arrives.
 */
import { createSocket } from 'node:dgram';
import { Encoder } from '../../src/membership/codec.js';

const [target, portS, countS, seedS, keyHex, cluster] = process.argv.slice(2);
if (!target || !portS || !countS || !seedS || keyHex === undefined || !cluster) {
  process.stderr.write('usage: fuzz-sender TARGET PORT COUNT SEED KEYHEX CLUSTER\n');
  process.exit(2);
}
let state = Number(seedS) >>> 0 || 1;
const rand = (): number => {
  // xorshift32: deterministic per seed, so a failure reproduces.
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 0x1_0000_0000;
};
const byte = (): number => Math.floor(rand() * 256);
const key = keyHex ? Buffer.from(keyHex, 'hex') : undefined;
const now = Date.now();
const corpus: Buffer[] = [];
for (const sender of ['10.244.1.11', '10.244.2.12', '10.9.9.9']) {
  const enc = new Encoder({ sender, cluster, key });
  corpus.push(...enc.state({ mac: '02:00:00:00:00:01', overlay: sender, groups: ['239.1.1.1', '239.7.7.7'] }, now));
  corpus.push(enc.leave(now));
}
const wrongKey = new Encoder({ sender: '10.244.1.11', cluster, key: Buffer.alloc(32, 7) });
corpus.push(...wrongKey.state({ mac: '02:00:00:00:00:02', overlay: '10.244.1.11', groups: ['239.1.1.1'] }, now));

function datagram(): Buffer {
  const base = Buffer.from(corpus[Math.floor(rand() * corpus.length)]!);
  switch (Math.floor(rand() * 6)) {
    case 0:
      return Buffer.from(Array.from({ length: Math.floor(rand() * 1500) }, byte));
    case 1:
      return base.subarray(0, Math.floor(rand() * base.length));
    case 2: {
      const i = Math.floor(rand() * base.length);
      base[i] = base[i]! ^ (1 << Math.floor(rand() * 8));
      return base;
    }
    case 3:
      for (let n = 0; n < 1 + rand() * 8; n++) base[Math.floor(rand() * base.length)] = byte();
      return base;
    default:
      return base; // a replay of a valid datagram from another sender
  }
}

const socket = createSocket('udp4');
const total = Number(countS);
let sent = 0;
const batch = async (): Promise<void> => {
  for (let i = 0; i < 200 && sent < total; i++, sent++) socket.send(datagram(), Number(portS), target);
  await new Promise((r) => setTimeout(r, 2));
};
while (sent < total) await batch();
await new Promise((r) => setTimeout(r, 200));
socket.close();
process.stdout.write(`${JSON.stringify({ sent })}\n`);
