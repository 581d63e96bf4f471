/**
 * Every fix text doctor can print must be advice that works: the agent flags it names must be
 * accepted by the agent's own config parser (validateConfig), with the value the text gives; doctor
 * flags must exist on `kmcast doctor`; and every rp_filter value it tells users to set must pass the
 * agent's own check (effectiveRpFilter, whatever the device's own value). The texts are collected
 * by running evaluate() over facts that reach every branch, not copied from the source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { AGENT_FLAGS, mergeOptions, validateConfig } from '../../../src/sidecar/config.js';
import { evaluate } from '../../../src/sidecar/doctor.js';
import type { DoctorFacts, DoctorOptions } from '../../../src/sidecar/doctor.js';
import { effectiveRpFilter, RP_FILTER_FIX } from '../../../src/sidecar/host.js';
import { registerDoctor } from '../../../src/cli/doctor.js';
import { agentStatusFixture } from '../../support/agent-status.js';

const OPTS: DoctorOptions = { device: 'vx0', peers: ['10.244.2.10'], controlPort: 7470, statusUrl: 'http://127.0.0.1:9470', service: 'app-kmcast.ns.svc.cluster.local' };

const link = (name: string, over: Partial<DoctorFacts['device']> = {}): DoctorFacts['device'] => ({ name, exists: true, mtu: 1450, kind: 'veth', ipv4: ['10.244.1.11'], ...over });

const BASE: DoctorFacts = {
  capEff: '00000000a80435fb',
  uid: 0,
  kernelRelease: '6.12.0',
  vxlanProbe: { link: 'kmcprobe1', ok: true },
  mdbProbe: { ok: true },
  ipVersion: 'ip utility, iproute2-6.15.0',
  mdbHelp: 'bridge mdb add dev DEV port PORT grp GROUP [dst IPADDR]',
  underlay: { ...link('eth0'), from: 'default-route' },
  device: link('vx0', { mtu: 1400, kind: 'vxlan', ipv4: [] }),
  rpFilter: { all: 0, default: 0, underlay: 0, device: 0 },
  procSys: { writable: false, readOnlyMount: true },
  ownIp: '10.244.1.11',
  dns: { service: 'app-kmcast.ns.svc.cluster.local', server: '10.96.0.10', addresses: ['10.244.1.11', '10.244.2.10'] },
  agent: { url: 'http://127.0.0.1:9470', status: agentStatusFixture() },
  peerProbes: [],
};

/** Facts reaching each branch of each check. */
function variants(): DoctorFacts[] {
  const out: DoctorFacts[] = [BASE];
  const v = (over: Partial<DoctorFacts>): void => {
    out.push({ ...BASE, ...over });
  };
  v({ capEff: null });
  v({ capEff: '0000000000000000' });
  for (const error of ['Operation not permitted', 'Unknown device type', 'exec: ip: ENOENT', 'RTNETLINK answers: Invalid argument']) {
    v({ vxlanProbe: { link: 'kmcprobe1', ok: false, error }, mdbProbe: null });
  }
  v({ ipVersion: null, mdbHelp: null });
  v({ ipVersion: 'ip utility, iproute2-6.1.0', mdbProbe: { ok: false, error: 'Invalid argument' } });
  v({ kernelRelease: '5.15.0', mdbProbe: { ok: false, error: 'Invalid argument' } });
  v({ kernelRelease: '5.15.0' });
  v({ mdbHelp: null, mdbProbe: { ok: false, error: 'x' } });
  v({ underlay: { error: 'no default route' } });
  v({ underlay: { ...link('eth9', { exists: false, mtu: null }), from: 'flag' } });
  v({ underlay: { ...link('eth0', { mtu: 1300 }), from: 'default-route' } });
  v({ device: link('vx0', { mtu: 9000, kind: 'vxlan', ipv4: [] }) });
  for (const all of [0, 1, 2, null]) {
    for (const dev of [0, 1, 2, null]) {
      for (const exists of [true, false]) {
        for (const writable of [true, false]) {
          for (const addressing of ['pod-ip', 'auto']) {
            v({
              rpFilter: { all, default: dev, underlay: dev, device: dev },
              device: link('vx0', { exists, kind: exists ? 'vxlan' : null, ipv4: [] }),
              procSys: writable ? { writable: true, readOnlyMount: false } : { writable: false, readOnlyMount: true },
              agent: { url: 'http://127.0.0.1:9470', status: agentStatusFixture({ addressing }) },
            });
          }
        }
      }
    }
  }
  v({ procSys: { writable: false, readOnlyMount: false, error: 'EACCES' }, rpFilter: { all: 1, default: 1, underlay: 1, device: 1 } });
  v({ dns: { service: 'app-kmcast.ns.svc.cluster.local', server: '10.96.0.10', error: 'ENOTFOUND' } });
  v({ dns: { service: 'app-kmcast.ns.svc.cluster.local', server: '10.96.0.10', addresses: [] } });
  v({ dns: { service: 'app-kmcast.ns.svc.cluster.local', server: '10.96.0.10', addresses: ['10.244.2.10'] } });
  v({ dns: { service: 'app-kmcast.ns.svc.cluster.local', server: '10.96.0.10', addresses: ['10.244.1.11'] } });
  v({
    agent: { url: 'http://127.0.0.1:9470', error: 'ECONNREFUSED' },
    peerProbes: [
      { ip: '10.244.2.10', error: 'ECONNREFUSED' },
      { ip: '10.244.3.1', error: 'EHOSTUNREACH' },
      { ip: '10.244.3.2', error: null },
    ],
  });
  v({ agent: { url: 'http://127.0.0.1:9470', status: agentStatusFixture({ ready: false, peers: [] }) } });
  const st = agentStatusFixture();
  for (const state of ['alive', 'pending', 'left', 'expired', 'suspect']) {
    v({ agent: { url: 'http://127.0.0.1:9470', status: { ...st, peers: st.peers.map((p) => ({ ...p, state })) } as typeof st } });
  }
  return out;
}

/** The placeholders fix texts use for a value, and a real value of that kind. */
const PLACEHOLDER: Record<string, string> = { IF: 'eth0', CIDR: '10.0.0.0/24', NAME: 'app-kmcast.ns.svc.cluster.local', IP: '10.244.2.10', address: ':9470' };
const AGENT_KEY = new Map(Object.entries(AGENT_FLAGS).map(([k, flag]) => [flag, k]));
const KUBELET_FLAGS = new Set(['--allowed-unsafe-sysctls']);

function doctorFlags(): Set<string> {
  const program = new Command('kmcast');
  registerDoctor(program);
  return new Set(program.commands[0]!.options.map((o) => o.long!).filter(Boolean));
}

/** What is wrong with one fix text; empty when every piece of advice in it works. */
function problems(fix: string, doctor: Set<string>): string[] {
  const out: string[] = [];
  for (const m of fix.matchAll(/(--[a-z][a-z-]*)(?:[ =]([^\s,;)]+))?/g)) {
    const [, flag, rawValue] = m as unknown as [string, string, string | undefined];
    const key = AGENT_KEY.get(flag);
    const agentContext = /\bagent\b/.test(fix.slice(Math.max(0, m.index! - 40), m.index!)) || doctor.has(flag) === false;
    if (KUBELET_FLAGS.has(flag)) {
      if (rawValue && !/^net\.ipv4\.conf\.all\.rp_filter$/.test(rawValue)) out.push(`${flag}=${rawValue}: not the sysctl the text sets`);
      continue;
    }
    if (key !== undefined && agentContext) {
      const value = rawValue === undefined || rawValue.startsWith('-') || rawValue === '/' ? 'true' : (PLACEHOLDER[rawValue] ?? rawValue.replace(/[A-Z]{2,}/g, (p) => PLACEHOLDER[p] ?? p));
      try {
        validateConfig(mergeOptions({ service: 'app-kmcast.ns.svc.cluster.local', [key]: value }, {}));
      } catch (err) {
        out.push(`${flag} ${rawValue ?? ''}: the agent refuses it: ${(err as Error).message}`);
      }
      continue;
    }
    if (!doctor.has(flag) && key === undefined) out.push(`${flag}: neither an agent nor a doctor flag`);
  }
  // Every rp_filter value the text tells users to set must make the agent's check pass, whatever
  // the device's own value (vx0 starts with conf.default, 1 on strict nodes).
  for (const m of fix.matchAll(/net\.ipv4\.conf\.all\.rp_filter(?:=| to )(\d)(?: or (\d))?/g)) {
    for (const v of [m[1], m[2]].filter((x): x is string => x !== undefined).map(Number)) {
      for (const dev of [0, 1, 2]) {
        if (effectiveRpFilter(v, dev) === 1) out.push(`net.ipv4.conf.all.rp_filter=${v}: with ${'<dev>'}=${dev} the agent still sees strict mode and exits`);
      }
    }
  }
  return out;
}

test('every fix text doctor prints names only flags and values the agent accepts, and rp_filter values that pass its check', () => {
  const doctor = doctorFlags();
  const fixes = new Set<string>();
  for (const f of variants()) for (const r of evaluate(f, OPTS)) if (r.fix) fixes.add(r.fix);
  assert.ok(fixes.size >= 15, `only ${fixes.size} fix texts reached`);
  assert.ok(
    [...fixes].some((x) => x.includes('rp_filter')),
    'the rp_filter fix was reached',
  );
  const bad = [...fixes].flatMap((x) => problems(x, doctor).map((p) => `${p}\n    in: ${x}`));
  assert.deepEqual(bad, []);
});

test("the agent's own rp_filter advice passes the same check", () => {
  assert.deepEqual(problems(RP_FILTER_FIX, doctorFlags()), []);
});

test('the checker itself catches advice that does not work', () => {
  const doctor = doctorFlags();
  assert.ok(problems('run the agent with --addressing subnet=CIDR', doctor).length > 0);
  assert.ok(problems('set net.ipv4.conf.all.rp_filter to 0 or 2 in the pod', doctor).some((p) => /=0/.test(p)));
  assert.ok(problems('pass --no-such-flag', doctor).length > 0);
  assert.deepEqual(problems('pass --interface IF', doctor), []);
});
