/**
 * Real mDNS peers for the tests: avahi-daemon publishing a service, configured the way its docs
 * say, and python-zeroconf browsing the way its docs browse, over IPv4 or IPv6 only. Spawned
 * through the lab's process helpers, so labDown kills one a test left behind.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KmcastError } from '../errors.js';
import { runInNetns, spawnInNetns, waitFor } from './process.js';

/** Debian's python3, where python3-zeroconf is installed. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export type MdnsFamily = 4 | 6;

export interface AvahiOptions {
  /** A directory for its configuration, service file and run directory (removed by the caller). */
  readonly workDir: string;
  readonly hostName: string;
  /** The service published: `<name>` of `<type>` (e.g. `_ipp._tcp`) on `port`. */
  readonly service: { readonly name: string; readonly type: string; readonly port: number };
  /** Publish over this family only (avahi's use-ipv4 / use-ipv6). */
  readonly family: MdnsFamily;
  readonly interfaceName?: string;
  /** Quoted when avahi does not come up in time. */
  readonly explain?: () => Promise<string>;
}

/** avahi-daemon in `netns` (its own mount namespace: the service directory and pid file are fixed paths); resolves once it announced. */
export async function startAvahi(netns: string, o: AvahiOptions): Promise<ChildProcess> {
  const dir = mkdtempSync(join(o.workDir, 'avahi-'));
  const services = join(dir, 'services');
  const run = join(dir, 'run');
  for (const d of [services, run]) {
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
  }
  writeFileSync(
    join(dir, 'avahi-daemon.conf'),
    [
      '[server]',
      `host-name=${o.hostName}`,
      `use-ipv4=${o.family === 4 ? 'yes' : 'no'}`,
      `use-ipv6=${o.family === 6 ? 'yes' : 'no'}`,
      `allow-interfaces=${o.interfaceName ?? 'eth0'}`,
      'enable-dbus=no',
      '[wide-area]',
      'enable-wide-area=no',
      '[publish]',
      'publish-hinfo=no',
      'publish-workstation=no',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(services, 'kmcast.service'),
    `<?xml version="1.0" standalone='no'?>\n<!DOCTYPE service-group SYSTEM "avahi-service.dtd">\n<service-group><name>${o.service.name}</name><service><type>${o.service.type}</type><port>${o.service.port}</port></service></service-group>\n`,
  );
  const child = spawnInNetns(netns, [
    'unshare',
    '-m',
    'sh',
    '-c',
    `mount --bind ${services} /etc/avahi/services && mount --bind ${run} /run && exec avahi-daemon -f ${join(dir, 'avahi-daemon.conf')} --no-drop-root --no-chroot --no-rlimits`,
  ]);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor(`avahi-daemon in ${netns} published its service`, async () => await Promise.resolve(/successfully established/.test(out) || child.exitCode !== null), 15_000, {
    intervalMs: 100,
    ...(o.explain ? { explain: o.explain } : {}),
  });
  if (child.exitCode !== null) throw new KmcastError(`avahi-daemon in ${netns} exited: ${out}`);
  return child;
}

// python-zeroconf, the way its docs browse: a ServiceBrowser on one interface (an IPv4 address,
// or for IPv6 the interface's index), one IP version only. argv: interface type seconds family.
export const ZC_BROWSE_PY = `
import json, socket, sys, time
from zeroconf import IPVersion, ServiceBrowser, Zeroconf
v6 = sys.argv[4] == '6'
version = IPVersion.V6Only if v6 else IPVersion.V4Only
found = {}
class Listener:
    def add_service(self, zc, t, name):
        info = zc.get_service_info(t, name, timeout=3000)
        found[name] = info.parsed_addresses(version) if info else []
    def update_service(self, *a): pass
    def remove_service(self, *a): pass
iface = socket.if_nametoindex(sys.argv[1]) if v6 else sys.argv[1]
zc = Zeroconf(interfaces=[iface], ip_version=version)
ServiceBrowser(zc, sys.argv[2], Listener())
end = time.time() + float(sys.argv[3])
while time.time() < end and not found: time.sleep(0.1)
time.sleep(0.3)
print(json.dumps(found)); zc.close()
`;

/**
 * Browses `type` (e.g. `_ipp._tcp.local.`) from `netns` for up to `seconds`: instance name ->
 * addresses. `iface` is the IPv4 address to browse on, or for IPv6 the interface name.
 */
export async function zeroconfBrowse(netns: string, iface: string, type: string, seconds: number, family: MdnsFamily = 4): Promise<Record<string, string[]>> {
  const r = await runInNetns(netns, [SYSTEM_PYTHON, '-c', ZC_BROWSE_PY, iface, type, String(seconds), String(family)], (seconds + 10) * 1000);
  const line = r.stdout.trim().split('\n').pop() ?? '{}';
  try {
    return JSON.parse(line) as Record<string, string[]>;
  } catch {
    throw new KmcastError(`zeroconf browse in ${netns}: ${r.stderr || r.stdout}`);
  }
}
