/**
 * The lab's DNS server: answers A and AAAA queries for the headless Service name from a JSON records
 * file (each name lists addresses of either family: A answers the IPv4 ones, AAAA the IPv6 ones,
 * as a dual-stack headless Service does), NXDOMAIN for any other name. It re-reads the file on every query, so setServiceMembers takes
 * effect at once (unlike CoreDNS's 30-60 s cache, which is why kmcast must not rely on DNS timing).
 *
 * Run inside the router namespace: `node dns-server.js --records FILE --listen 10.96.0.10:53` (an
 * IPv6-only lab's: `--listen [fd00:10:96::10]:53`).
 * The answer logic is pure (answerQuery) and unit tested; only main() touches sockets and files.
 */
import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';

export type Records = Readonly<Record<string, readonly string[]>>;

const RCODE_NOERROR = 0;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
/** Short TTL: a stub resolver that caches still sees membership changes within a second. */
const TTL = 1;

const normalise = (name: string): string => name.replace(/\.$/, '').toLowerCase();

/** The response to one query datagram, or undefined when it is not a query worth answering. */
export function answerQuery(query: Buffer, records: Records): Buffer | undefined {
  let q: Packet;
  try {
    q = dnsPacket.decode(query);
  } catch {
    return undefined; // not DNS: a resolver would not wait for us either
  }
  if (q.type === 'response') return undefined;
  const questions = q.questions ?? [];
  const flags = dnsPacket.AUTHORITATIVE_ANSWER | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
  const question = questions[0];
  if (questions.length !== 1 || question === undefined) {
    return dnsPacket.encode({ id: q.id ?? 0, type: 'response', flags: flags | RCODE_FORMERR, questions });
  }
  const ips = records[normalise(question.name)];
  if (ips === undefined) {
    return dnsPacket.encode({ id: q.id ?? 0, type: 'response', flags: flags | RCODE_NXDOMAIN, questions });
  }
  // The name exists: A gets the IPv4 members, AAAA the IPv6 ones, ANY both; any other type, or a
  // family without members (AAAA of an IPv4-only Service), an empty NOERROR answer (NODATA).
  const type = question.type as string;
  const answers: Answer[] = [];
  if (type === 'A' || type === 'ANY') for (const ip of ips.filter((a) => isIPv4(a))) answers.push({ type: 'A', class: 'IN', name: question.name, ttl: TTL, data: ip });
  if (type === 'AAAA' || type === 'ANY') for (const ip of ips.filter((a) => isIPv6(a))) answers.push({ type: 'AAAA', class: 'IN', name: question.name, ttl: TTL, data: ip });
  return dnsPacket.encode({ id: q.id ?? 0, type: 'response', flags: flags | RCODE_NOERROR, questions, answers });
}

/** Parse a records file; lower-cases names so lookups are case-insensitive (RFC 4343). */
export function parseRecords(text: string): Records {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const out: Record<string, string[]> = {};
  for (const [name, ips] of Object.entries(raw)) {
    if (Array.isArray(ips)) out[normalise(name)] = ips.filter((ip): ip is string => typeof ip === 'string');
  }
  return out;
}

function arg(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

function main(argv: readonly string[]): void {
  const file = arg(argv, '--records');
  const listen = arg(argv, '--listen') ?? '10.96.0.10:53';
  const sep = listen.lastIndexOf(':');
  // An IPv6 address in brackets (an IPv6-only lab's): [fd00:10:96::10]:53.
  const host = listen.slice(0, sep).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(sep + 1));
  if (!file || sep < 0 || !Number.isInteger(port)) {
    process.stderr.write('usage: dns-server --records FILE --listen IP:PORT\n');
    process.exit(2);
  }
  const sock = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => {
    let records: Records = {};
    try {
      records = parseRecords(readFileSync(file, 'utf8'));
    } catch (err) {
      // A missing or torn file answers NXDOMAIN for everything rather than killing the server.
      process.stderr.write(`read records ${file}: ${(err as Error).message}\n`);
    }
    const res = answerQuery(msg, records);
    if (res) sock.send(res, rinfo.port, rinfo.address);
  });
  sock.on('error', (err) => {
    process.stderr.write(`dns-server: ${err.message}\n`);
    process.exit(1);
  });
  sock.bind(port, host, () => process.stdout.write(`listening on ${listen}\n`));
  process.on('SIGTERM', () => sock.close(() => process.exit(0)));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
