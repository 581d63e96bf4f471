/**
 * The lab's state directory (/run/kmcast/labs/<id>/): state.json (the Lab), dns.json (the records
 * the DNS server re-reads on every query), pids/ (one file per process started in the lab) and
 * the logs. /run is a tmpfs, so a reboot (which also drops every namespace) clears it.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './types.js';
import { labIdOfNetns, labStateDir } from './plan.js';

export const stateFile = (dir: string): string => join(dir, 'state.json');
export const dnsRecordsFile = (dir: string): string => join(dir, 'dns.json');
export const dnsPidFile = (dir: string): string => join(dir, 'dns.pid');
export const pidsDir = (dir: string): string => join(dir, 'pids');

/** Write-then-rename so a reader (the DNS server, another command) never sees half a file. */
export async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

export async function saveLab(lab: Lab): Promise<void> {
  await mkdir(lab.stateDir, { recursive: true });
  await writeAtomic(stateFile(lab.stateDir), `${JSON.stringify(lab, null, 2)}\n`);
}

export async function readLabState(id: string): Promise<Lab | undefined> {
  let text: string;
  try {
    text = await readFile(stateFile(labStateDir(id)), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as Lab;
}

/** Records answered by the lab DNS: lower-case FQDN (no trailing dot) -> addresses (IPv4 for A, IPv6 for AAAA). */
export type DnsRecords = Record<string, string[]>;

export async function writeDnsRecords(dir: string, records: DnsRecords): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeAtomic(dnsRecordsFile(dir), `${JSON.stringify(records)}\n`);
}

export async function readDnsRecords(dir: string): Promise<DnsRecords> {
  try {
    return JSON.parse(await readFile(dnsRecordsFile(dir), 'utf8')) as DnsRecords;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

export interface PidRecord {
  readonly pid: number;
  readonly netns: string;
  readonly argv: readonly string[];
}

/** Synchronous on purpose: spawnInNetns is synchronous and the record must exist before it returns. */
export function recordPid(netns: string, pid: number, argv: readonly string[]): void {
  const id = labIdOfNetns(netns);
  if (id === undefined) return; // not a lab namespace: nothing to clean up for labDown
  recordLabPid(id, netns, pid, argv);
}

/** recordPid for a process of lab `id` that runs outside its namespaces (`where` says where, e.g. 'host'). */
export function recordLabPid(id: string, where: string, pid: number, argv: readonly string[]): void {
  const netns = where;
  const dir = pidsDir(labStateDir(id));
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const rec: PidRecord = { pid, netns, argv };
  writeFileSync(join(dir, String(pid)), JSON.stringify(rec));
}

export async function listPidRecords(dir: string): Promise<PidRecord[]> {
  let names: string[];
  try {
    names = await readdir(pidsDir(dir));
  } catch {
    return [];
  }
  const out: PidRecord[] = [];
  for (const n of names) {
    try {
      out.push(JSON.parse(await readFile(join(pidsDir(dir), n), 'utf8')) as PidRecord);
    } catch {
      // a torn or foreign file: the namespace scan in labDown still finds the process
    }
  }
  return out;
}

export async function forgetPid(netns: string, pid: number): Promise<void> {
  const id = labIdOfNetns(netns);
  if (id === undefined) return;
  await rm(join(pidsDir(labStateDir(id)), String(pid)), { force: true });
}
