/**
 * `kmcast lint`: multicast mistakes in Kubernetes manifests and CNI configuration, pure. Input:
 * parsed documents (YAML or JSON, each with its file and line table); output: findings, each
 * with rule, severity, object, field path, why and fix.
 */
import { isMap } from 'yaml';
import { InputError } from '../errors.js';
import { canonicalIpv6 } from '../net/ipv6.js';
import { classifyGroup, classifyGroup6, groupMac, groupMac6, inCidr, MULTICAST, parseIPv4 } from './groups.js';
import { TEMPLATE_PATHS } from './inject.js';
import { RULES } from './lint-rules.js';
import type { Rule, Severity } from './lint-rules.js';
import { checkPodSecurity } from './pss.js';
import type { PssLevel } from './pss.js';
import { GENERATED_FOR_ANNOTATION } from './sidecar.js';
import { indexedLineOf, lineOf } from './yamlio.js';
import type { SourceDoc } from './yamlio.js';

export interface Finding {
  readonly rule: string;
  readonly name: string;
  readonly severity: Severity;
  readonly file: string;
  readonly line: number;
  readonly object: string;
  readonly path: string;
  readonly message: string;
  readonly why: string;
  readonly fix: string;
}

type Path = (string | number)[];
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

export function formatPath(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][\w-]*$/.test(p) ? `${i ? '.' : ''}${p}` : `[${JSON.stringify(p)}]`)).join('');
}

/** Where an object sits: its document, the path of the object in it, its name and namespace. */
interface Ctx {
  readonly src: SourceDoc;
  readonly base: Path;
  readonly object: string;
  readonly namespace: string;
}

/** An IPv6 address found where a group may be: canonical text. */
interface Group6Use {
  readonly text: string;
  readonly port?: number;
  readonly keyed: boolean;
  readonly hasSource: boolean;
  readonly ctx: Ctx;
  readonly path: Path;
}

interface GroupUse {
  readonly addr: number;
  readonly text: string;
  readonly port?: number;
  readonly keyed: boolean;
  readonly hasSource: boolean;
  readonly ctx: Ctx;
  readonly path: Path;
}

const GROUP_KEY = /group|mcast|multicast/i;
// Keys next to a group that hold something else: the interface or source address, TTL, ports.
const NOT_GROUP_KEY = /iface|interface|(^|[_-])if($|[_-])|source|src|bind|ttl|loop|port|nic/i;
const SOURCE_KEY = /source|src/i;
const IPV4_IN_TEXT = /(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?(?![\d.])/g;
// IPv6 text: "[addr]:port", or a bare address with "::" or all eight groups (not a MAC or a time).
const IPV6_IN_TEXT = /\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]*)(?![\w:])/g;
const WELL_KNOWN_LINK_LOCAL = new Set(['224.0.0.1', '224.0.0.2', '224.0.0.5', '224.0.0.6', '224.0.0.9', '224.0.0.18', '224.0.0.22', '224.0.0.251', '224.0.0.252']);
const TUNNEL_PORTS = new Set([4789, 8472, 6081]);

class Linter {
  readonly findings: Finding[] = [];
  private readonly reported = new Set<string>();
  private readonly groups: GroupUse[] = [];
  private readonly groups6: Group6Use[] = [];
  private readonly services: { ctx: Ctx; obj: Obj }[] = [];
  private readonly policies: { ctx: Ctx; obj: Obj }[] = [];
  private readonly workloads: { ctx: Ctx; obj: Obj; tpl: Path }[] = [];
  /** Namespaces in the input that enforce a Pod Security level. */
  private readonly enforced = new Map<string, { level: PssLevel; object: string }>();
  /** Line lookups per document, indexed once (lint never changes a document). */
  private readonly lines = new WeakMap<SourceDoc, (path: Path) => number>();

  private lineOf(src: SourceDoc, path: Path): number {
    let f = this.lines.get(src);
    if (!f) this.lines.set(src, (f = indexedLineOf(src)));
    return f(path);
  }

  report(rule: Rule, ctx: Ctx, path: Path, message: string): void {
    const full = [...ctx.base, ...path];
    const f: Finding = {
      rule: rule.id,
      name: rule.name,
      severity: rule.severity,
      file: ctx.src.file,
      line: this.lineOf(ctx.src, full),
      object: ctx.object,
      path: formatPath(path),
      message,
      why: rule.why,
      fix: rule.fix,
    };
    // One finding per rule, object, path and message; a Set keeps this linear in the findings.
    const key = JSON.stringify([f.rule, f.file, f.object, f.path, f.message]);
    if (!this.reported.has(key)) {
      this.reported.add(key);
      this.findings.push(f);
    }
  }

  /** Collects group addresses from a value; `keyed` when its key or flag names a group. */
  private collect(ctx: Ctx, path: Path, value: string, keyed: boolean, hasSource: boolean): void {
    if (keyed) {
      // A group setting whose value looks like an address but is not one (239.1.1, 239.1.1.300).
      for (const m of value.matchAll(/(?<![\d.])\d{1,3}(?:\.\d{1,3}){1,4}(?![\d.])/g)) {
        if (parseIPv4(m[0]) === undefined && /^(22[4-9]|23\d)\./.test(m[0])) {
          this.report(RULES.groupNotMulticast, ctx, path, `"${m[0]}" is not an IPv4 address`);
        }
      }
    }
    for (const m of value.matchAll(IPV4_IN_TEXT)) {
      const addr = parseIPv4(m[1]!);
      if (addr === undefined) continue;
      const multicast = inCidr(addr, MULTICAST.base, MULTICAST.bits);
      if (!keyed && !multicast) continue;
      const port = m[2] ? Number(m[2]) : undefined;
      this.groups.push({ addr, text: m[1]!, ...(port !== undefined ? { port } : {}), keyed, hasSource, ctx, path });
    }
    for (const m of value.matchAll(IPV6_IN_TEXT)) {
      const raw = m[1] ?? m[3]!;
      if (!raw.includes('::') && raw.split(':').length !== 8) continue;
      const text = canonicalIpv6(raw);
      if (text === undefined) continue;
      if (!keyed && !text.startsWith('ff')) continue;
      const port = m[2] ? Number(m[2]) : undefined;
      this.groups6.push({ text, ...(port !== undefined ? { port } : {}), keyed, hasSource, ctx, path });
    }
  }

  private keyedValue(ctx: Ctx, path: Path, key: string, value: string, hasSource: boolean): void {
    const keyed = GROUP_KEY.test(key) && !NOT_GROUP_KEY.test(key);
    if (NOT_GROUP_KEY.test(key) && !GROUP_KEY.test(key)) {
      // An interface or source address: not a group, but still checked if it is multicast.
      this.collect(ctx, path, value, false, hasSource);
      return;
    }
    if (GROUP_KEY.test(key) && NOT_GROUP_KEY.test(key)) return;
    this.collect(ctx, path, value, keyed, hasSource);
  }

  private container(ctx: Ctx, path: Path, c: Obj): void {
    const env = asList(c.env);
    const envHasSource = env.some((e) => isObj(e) && typeof e.name === 'string' && SOURCE_KEY.test(e.name) && !!str(e.value));
    env.forEach((e, i) => {
      if (!isObj(e) || typeof e.name !== 'string') return;
      const v = str(e.value);
      if (v === undefined) return;
      this.keyedValue(ctx, [...path, 'env', i, 'value'], e.name, v, envHasSource);
      if (e.name === 'KMCAST_VXLAN_PORT' && TUNNEL_PORTS.has(Number(v))) {
        this.report(RULES.vxlanPortConflict, ctx, [...path, 'env', i, 'value'], `the kmcast overlay uses UDP ${v}, a CNI tunnel port`);
      }
    });
    for (const field of ['command', 'args'] as const) {
      const tokens = asList(c[field]).map((t) => str(t) ?? '');
      const all = tokens.join(' ');
      const hasSource = envHasSource || /--?[\w-]*(source|src)\b/i.test(all) || /--?[\w-]*(source|src)\b/i.test(asList(c.command).join(' '));
      tokens.forEach((t, i) => {
        const p = [...path, field, i];
        if (/\bip\s+(-\S+\s+)*m(addr|a|add|addre|addres|address)?\s+add\b/.test(t) || (t === 'maddr' && tokens[i + 1] === 'add' && /(^|\/)ip$/.test(tokens[i - 1] ?? ''))) {
          this.report(RULES.ipMaddrAdd, ctx, p, '`ip maddr add` does not join a multicast group');
        }
        const prev = tokens[i - 1] ?? '';
        const flagged = /^--?([\w-]+)=(.*)$/.exec(t);
        if (flagged) this.keyedValue(ctx, p, flagged[1]!, flagged[2]!, hasSource);
        else if (/^--?[\w-]+$/.test(prev) && !t.startsWith('-')) this.keyedValue(ctx, p, prev.replace(/^-+/, ''), t, hasSource);
        else {
          // A shell script in one argument: look for --flag VALUE pairs inside it.
          for (const m of t.matchAll(/--?([\w-]+)[= ]+(['"]?)([^\s'"]+)\2/g)) this.keyedValue(ctx, p, m[1]!, m[3]!, hasSource);
          this.collect(ctx, p, t, false, hasSource);
        }
        const vx = /^--vxlan-port(?:=(\d+))?$/.exec(t);
        const port = vx ? Number(vx[1] ?? tokens[i + 1]) : NaN;
        if (TUNNEL_PORTS.has(port)) this.report(RULES.vxlanPortConflict, ctx, p, `the kmcast overlay uses UDP ${port}, a CNI tunnel port`);
      });
    }
  }

  private podSpec(ctx: Ctx, path: Path, spec: Obj, kind: string, workload: Obj): void {
    for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
      asList(spec[list]).forEach((c, i) => {
        if (isObj(c)) this.container(ctx, [...path, list, i], c);
      });
    }
    if (spec.hostNetwork === true) {
      const dns = spec.dnsPolicy;
      if (dns === undefined || dns === 'ClusterFirst') {
        this.report(
          RULES.hostNetworkDnsPolicy,
          ctx,
          [...path, dns === undefined ? 'hostNetwork' : 'dnsPolicy'],
          `hostNetwork: true with dnsPolicy ${dns === undefined ? 'unset (ClusterFirst)' : 'ClusterFirst'}: cluster names do not resolve`,
        );
      }
      const replicas = (workload.spec as Obj | undefined)?.replicas;
      const multi = ['Deployment', 'StatefulSet', 'ReplicaSet'].includes(kind) && (replicas === undefined || (typeof replicas === 'number' && replicas > 1));
      const terms = asList(((spec.affinity as Obj | undefined)?.podAntiAffinity as Obj | undefined)?.requiredDuringSchedulingIgnoredDuringExecution);
      const spread = terms.some((t) => isObj(t) && t.topologyKey === 'kubernetes.io/hostname');
      if (multi && !spread) {
        this.report(RULES.hostNetworkAntiAffinity, ctx, [...path, 'hostNetwork'], `${kind} with hostNetwork: true and ${replicas ?? 1} replicas may place two pods on one node`);
      }
    }
  }

  private annotations(ctx: Ctx, path: Path, meta: unknown): void {
    if (!isObj(meta) || !isObj(meta.annotations)) return;
    for (const [k, v] of Object.entries(meta.annotations)) {
      if (typeof v === 'string' && GROUP_KEY.test(k) && !k.startsWith('k8s.v1.cni.cncf.io/')) this.keyedValue(ctx, [...path, 'annotations', k], k, v, false);
    }
  }

  /** One Kubernetes object (Lists are unpacked by the caller). */
  object(src: SourceDoc, base: Path, obj: Obj): void {
    const kind = String(obj.kind);
    const meta = isObj(obj.metadata) ? obj.metadata : {};
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default';
    const name = typeof meta.name === 'string' ? meta.name : '(unnamed)';
    const ctx: Ctx = { src, base, object: `${kind}/${typeof meta.namespace === 'string' ? `${meta.namespace}/` : ''}${name}`, namespace };
    if (isObj(meta.annotations) && typeof meta.annotations[GENERATED_FOR_ANNOTATION] === 'string') return;
    this.annotations(ctx, ['metadata'], meta);

    const tpl = TEMPLATE_PATHS[kind];
    if (tpl) {
      let t: unknown = obj;
      for (const k of tpl) t = isObj(t) ? t[k] : undefined;
      if (isObj(t) && isObj(t.spec)) {
        this.annotations(ctx, [...tpl, 'metadata'], t.metadata);
        this.podSpec(ctx, [...tpl, 'spec'], t.spec, kind, obj);
        this.workloads.push({ ctx, obj, tpl: [...tpl] });
      }
      return;
    }
    switch (kind) {
      case 'Namespace': {
        const level = isObj(meta.labels) ? meta.labels['pod-security.kubernetes.io/enforce'] : undefined;
        if (level === 'baseline' || level === 'restricted') this.enforced.set(name, { level, object: ctx.object });
        break;
      }
      case 'ConfigMap':
        if (isObj(obj.data)) {
          const sourceKeyed = Object.keys(obj.data).some((x) => SOURCE_KEY.test(x));
          for (const [k, v] of Object.entries(obj.data)) {
            if (typeof v !== 'string') continue;
            const p: Path = ['data', k];
            if (/\.(json|conflist)$/.test(k) || (k.endsWith('.conf') && v.trim().startsWith('{'))) {
              this.cniText(ctx, p, v);
              continue;
            }
            if (/\bip\s+(-\S+\s+)*maddr\s+add\b/.test(v)) this.report(RULES.ipMaddrAdd, ctx, p, '`ip maddr add` does not join a multicast group');
            // Property files: key=value lines; each key is checked like an env var.
            const lines = v
              .split('\n')
              .map((l) => /^\s*([\w.-]+)\s*[=:]\s*(.+)$/.exec(l))
              .filter((m): m is RegExpExecArray => m !== null);
            if (lines.length > 0 && v.includes('\n')) for (const m of lines) this.keyedValue(ctx, p, m[1]!, m[2]!, /source|src/i.test(v));
            else this.keyedValue(ctx, p, k, v, sourceKeyed);
          }
        }
        return;
      case 'NetworkAttachmentDefinition': {
        const config = (obj.spec as Obj | undefined)?.config;
        if (typeof config === 'string') this.cniText(ctx, ['spec', 'config'], config);
        return;
      }
      case 'Service':
        this.services.push({ ctx, obj });
        return;
      case 'NetworkPolicy':
        this.policies.push({ ctx, obj });
        return;
      default:
        return;
    }
  }

  private cniText(ctx: Ctx, path: Path, text: string): void {
    let conf: unknown;
    try {
      conf = JSON.parse(text);
    } catch (err) {
      throw new InputError(`${ctx.src.file}:${lineOf(ctx.src, [...ctx.base, ...path])}: parse CNI configuration in ${formatPath(path)}: ${(err as Error).message}`);
    }
    if (isObj(conf)) this.cni(ctx, path, conf, true);
  }

  /** A CNI network configuration, a conflist or Flannel's net-conf.json. `inner` paths are reported at `path`. */
  cni(ctx: Ctx, path: Path, conf: Obj, inner = false): void {
    const at = (p: Path): Path => (inner ? path : [...path, ...p]);
    const walk = (v: unknown, p: Path): void => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
      else if (isObj(v)) {
        for (const [k, x] of Object.entries(v)) {
          if (k.toLowerCase() === 'enablemulticast') this.report(RULES.flannelEnableMulticast, ctx, at([...p, k]), `"${k}" is not a Flannel option and is ignored`);
          walk(x, [...p, k]);
        }
      }
    };
    walk(conf, []);
    const plugins: [Obj, Path][] = Array.isArray(conf.plugins) ? conf.plugins.map((p, i): [unknown, Path] => [p, ['plugins', i]]).filter((x): x is [Obj, Path] => isObj(x[0])) : [[conf, []]];
    for (const [p, pp] of plugins) {
      const mode = typeof p.mode === 'string' ? p.mode.toLowerCase() : undefined;
      if (p.type === 'ipvlan' && (mode === 'l3' || mode === 'l3s')) {
        this.report(RULES.ipvlanL3, ctx, at([...pp, 'mode']), `ipvlan mode ${mode} carries no multicast or broadcast`);
      }
      if (p.type === 'macvlan' && mode !== undefined && mode !== 'bridge') {
        this.report(RULES.macvlanNotBridge, ctx, at([...pp, 'mode']), `macvlan mode ${mode} loses multicast between pods on one node`);
      }
      const l2 = p.type === 'macvlan' || (p.type === 'ipvlan' && (mode === undefined || mode === 'l2'));
      if (l2) {
        const ipam = isObj(p.ipam) ? p.ipam : {};
        const routes = asList(ipam.routes);
        const has = routes.some((r) => isObj(r) && typeof r.dst === 'string' && (r.dst === '224.0.0.0/4' || r.dst === '0.0.0.0/0'));
        if (!has) this.report(RULES.noMulticastRoute, ctx, at([...pp, 'ipam']), `${String(p.type)} attachment without a 224.0.0.0/4 route`);
      }
    }
  }

  /** Rules that need every document first: group sets per namespace, Services, policies. */
  /** Workloads in a namespace of the input that enforces baseline or restricted, checked against it. */
  private podSecurity(): void {
    for (const { ctx, obj, tpl } of this.workloads) {
      const ns = this.enforced.get(ctx.namespace);
      if (!ns) continue;
      let t: unknown = obj;
      for (const k of tpl) t = isObj(t) ? t[k] : undefined;
      if (!isObj(t)) continue;
      for (const v of checkPodSecurity(t, ns.level)) {
        this.report(RULES.podSecurityEnforced, ctx, [...tpl, ...parsePssPath(v.path)], `${ns.object} enforces ${ns.level}; ${v.control}: ${v.message}`);
      }
    }
  }

  finish(): void {
    const groupPorts = new Map<string, Set<number>>();
    // Per namespace, per group MAC, the groups seen by address (at most 32 addresses share a MAC).
    const macs = new Map<string, Map<string, Map<string, GroupUse | Group6Use>>>();
    for (const g of this.groups) {
      const cls = classifyGroup(g.addr);
      const where = `${g.text}${g.port !== undefined ? `:${g.port}` : ''}`;
      if (g.port !== undefined && cls !== 'not-multicast') {
        if (!groupPorts.has(g.ctx.namespace)) groupPorts.set(g.ctx.namespace, new Set());
        groupPorts.get(g.ctx.namespace)!.add(g.port);
      }
      switch (cls) {
        case 'not-multicast':
          if (g.keyed && g.text !== '255.255.255.255' && g.text !== '0.0.0.0') {
            this.report(RULES.groupNotMulticast, g.ctx, g.path, `${where} is used as a group but is not a multicast address`);
          }
          continue;
        case 'link-local':
          if (!WELL_KNOWN_LINK_LOCAL.has(g.text)) this.report(RULES.groupLinkLocal, g.ctx, g.path, `${where} is in 224.0.0.0/24, reserved for local network control`);
          break;
        case 'glop':
          this.report(RULES.groupGlop, g.ctx, g.path, `${where} is in 233.0.0.0/8 (GLOP, RFC 3180; AD-HOC block III at 233.252.0.0/14), not a private range`);
          break;
        case 'ssm':
          if (!g.hasSource) this.report(RULES.groupSsmWithoutSource, g.ctx, g.path, `${where} is Source-Specific Multicast but no source is configured`);
          break;
        case 'global':
          this.report(RULES.groupNotAdminScoped, g.ctx, g.path, `${where} is globally scoped; 239.0.0.0/8 is the private range`);
          break;
        case 'admin-scoped':
          break;
      }
      if (cls === 'link-local') continue;
      this.macAlias(macs, groupMac(g.addr), g);
    }

    this.finishGroups6(groupPorts, macs);
    for (const { ctx, obj } of this.services) this.service(ctx, obj, groupPorts.get(ctx.namespace) ?? new Set());
    this.podSecurity();
    for (const { ctx, obj } of this.policies) this.policy(ctx, obj, groupPorts.get(ctx.namespace) ?? new Set());
  }

  /** The IPv6 group rules; ports and MACs go into the same tables as the IPv4 groups'. */
  private finishGroups6(groupPorts: Map<string, Set<number>>, macs: Map<string, Map<string, Map<string, GroupUse | Group6Use>>>): void {
    for (const g of this.groups6) {
      const cls = classifyGroup6(g.text);
      const where = g.port !== undefined ? `[${g.text}]:${g.port}` : g.text;
      if (g.port !== undefined && cls !== 'not-multicast') {
        if (!groupPorts.has(g.ctx.namespace)) groupPorts.set(g.ctx.namespace, new Set());
        groupPorts.get(g.ctx.namespace)!.add(g.port);
      }
      switch (cls) {
        case 'not-multicast':
          if (g.keyed && g.text !== '::') this.report(RULES.groupNotMulticast, g.ctx, g.path, `${where} is used as a group but is not an IPv6 multicast address (ff00::/8)`);
          continue;
        case 'reserved-scope':
        case 'interface-local':
          this.report(RULES.group6Scope, g.ctx, g.path, `${where} is of ${cls === 'interface-local' ? 'interface-local scope: it never leaves the pod' : 'a reserved scope (0 or 15)'}`);
          continue;
        case 'nd-mld':
          this.report(RULES.group6Reserved, g.ctx, g.path, `${where} is a Neighbor Discovery or MLD group`);
          continue;
        case 'ssm':
          if (!g.hasSource) this.report(RULES.group6SsmWithoutSource, g.ctx, g.path, `${where} is Source-Specific Multicast (ff3X::/32) but no source is configured`);
          break;
        case 'global':
          this.report(RULES.group6Global, g.ctx, g.path, `${where} is globally scoped; ff05::/16 (site) and ff08::/16 (organization) are private scopes`);
          break;
        case 'link-local':
        case 'scoped':
          break;
      }
      if (cls === 'link-local') continue;
      this.macAlias(macs, groupMac6(g.text), g);
    }
  }

  /** KMC106: `g` shares its Ethernet MAC with another group of its namespace seen before (either family). */
  private macAlias(macs: Map<string, Map<string, Map<string, GroupUse | Group6Use>>>, mac: string, g: GroupUse | Group6Use): void {
    if (!macs.has(g.ctx.namespace)) macs.set(g.ctx.namespace, new Map());
    const byMac = macs.get(g.ctx.namespace)!;
    if (!byMac.has(mac)) byMac.set(mac, new Map());
    const seen = byMac.get(mac)!;
    const first = [...seen.values()].find((o) => o.text !== g.text);
    if (first) this.report(RULES.groupMacAlias, g.ctx, g.path, `${g.text} and ${first.text} (${first.ctx.object}) share the Ethernet MAC ${mac} in namespace ${g.ctx.namespace}`);
    seen.set(g.text, g);
  }

  private mentionsMulticast(obj: Obj): boolean {
    const meta = isObj(obj.metadata) ? obj.metadata : {};
    const text = [meta.name, ...Object.entries(isObj(meta.annotations) ? meta.annotations : {}).flat(), ...Object.entries(isObj(meta.labels) ? meta.labels : {}).flat()]
      .filter((x): x is string => typeof x === 'string')
      .join(' ');
    // `kmcast` itself contains "mcast"; its own objects are not a mistake.
    return /multicast|(?<!k)mcast/i.test(text);
  }

  private service(ctx: Ctx, obj: Obj, groupPorts: Set<number>): void {
    const spec = isObj(obj.spec) ? obj.spec : {};
    const ports = asList(spec.ports);
    const headless = spec.clusterIP === 'None';
    const addrs: [string, Path][] = [
      [str(spec.clusterIP) ?? '', ['spec', 'clusterIP']],
      [str(spec.loadBalancerIP) ?? '', ['spec', 'loadBalancerIP']],
      ...asList(spec.externalIPs).map((a, i): [string, Path] => [str(a) ?? '', ['spec', 'externalIPs', i]]),
    ];
    const mcastAddr = addrs.find(([a]) => {
      const n = parseIPv4(a);
      return n !== undefined && inCidr(n, MULTICAST.base, MULTICAST.bits);
    });
    const portHit = ports.findIndex((p) => isObj(p) && typeof p.port === 'number' && groupPorts.has(p.port));
    const named = this.mentionsMulticast(obj);
    if (headless && (named || portHit >= 0)) {
      this.report(
        RULES.headlessForMulticast,
        ctx,
        portHit >= 0 ? ['spec', 'ports', portHit] : ['spec', 'clusterIP'],
        portHit >= 0
          ? `headless Service on the port of a multicast group (${String((ports[portHit] as Obj).port)}): it does not carry multicast`
          : 'headless Service named or annotated for multicast: it does not carry multicast',
      );
    } else if (!headless && (mcastAddr || named || portHit >= 0)) {
      const meta = isObj(obj.metadata) ? obj.metadata : {};
      const lb = Object.keys(isObj(meta.annotations) ? meta.annotations : {}).some((k) => k.includes('metallb')) ? ' (MetalLB)' : '';
      this.report(
        RULES.vipForMulticast,
        ctx,
        mcastAddr ? mcastAddr[1] : portHit >= 0 ? ['spec', 'ports', portHit] : ['metadata', 'name'],
        mcastAddr ? `a Service address cannot be a multicast group (${mcastAddr[0]})` : `${String(spec.type ?? 'ClusterIP')} Service${lb} expected to forward multicast`,
      );
    }
    const selector = isObj(spec.selector) ? spec.selector : undefined;
    ports.forEach((p, i) => {
      if (!isObj(p) || p.protocol !== undefined) return;
      const portNum = typeof p.port === 'number' ? p.port : undefined;
      const target = p.targetPort ?? p.port;
      const byName = typeof p.name === 'string' && /udp|mcast|multicast|syslog|dns|ntp|snmp/i.test(p.name);
      const byGroup = portNum !== undefined && groupPorts.has(portNum);
      const byContainer =
        selector !== undefined &&
        this.workloads.some(({ ctx: wctx, obj: w, tpl }) => {
          if (wctx.namespace !== ctx.namespace) return false;
          let t: unknown = w;
          for (const k of tpl) t = isObj(t) ? t[k] : undefined;
          const labels = isObj(t) && isObj(t.metadata) && isObj(t.metadata.labels) ? t.metadata.labels : {};
          if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
          const cps = asList((isObj(t) && isObj(t.spec) ? asList(t.spec.containers) : []).flatMap((c) => (isObj(c) ? asList(c.ports) : [])));
          const match = cps.filter((cp) => isObj(cp) && (cp.containerPort === target || cp.name === target));
          return match.length > 0 && match.every((cp) => isObj(cp) && cp.protocol === 'UDP');
        });
      if (byName || byGroup || byContainer) {
        this.report(
          RULES.udpWithoutProtocol,
          ctx,
          ['spec', 'ports', i],
          `port ${String(p.port)}${typeof p.name === 'string' ? ` (${p.name})` : ''} is UDP ${byContainer ? 'in the selected pods' : byGroup ? '(a multicast group port)' : 'by its name'} but has no protocol, so it is TCP`,
        );
      }
    });
  }

  private policy(ctx: Ctx, obj: Obj, groupPorts: Set<number>): void {
    const spec = isObj(obj.spec) ? obj.spec : {};
    let reported = false;
    for (const [dir, peers] of [
      ['ingress', 'from'],
      ['egress', 'to'],
    ] as const) {
      asList(spec[dir]).forEach((r, i) => {
        if (!isObj(r)) return;
        asList(r[peers]).forEach((peer, j) => {
          const cidr = isObj(peer) && isObj(peer.ipBlock) ? str(peer.ipBlock.cidr) : undefined;
          if (!cidr) return;
          const [a, b] = cidr.split('/');
          const n = parseIPv4(a ?? '');
          const bits = Number(b ?? 32);
          if (n === undefined || bits === 0) return;
          // Overlap: the block lies in 224.0.0.0/4, or covers it.
          if (inCidr(n, MULTICAST.base, MULTICAST.bits) || (bits <= 4 && inCidr(MULTICAST.base, n, bits))) {
            reported = true;
            this.report(RULES.policyForMulticast, ctx, ['spec', dir, i, peers, j, 'ipBlock', 'cidr'], `ipBlock ${cidr} names multicast addresses; NetworkPolicy does not govern multicast`);
          }
        });
      });
    }
    // A policy that opens a multicast group's port is believed to let the group's traffic in.
    asList(spec.ingress).forEach((r, i) => {
      if (reported || !isObj(r)) return;
      const j = asList(r.ports).findIndex((p) => isObj(p) && typeof p.port === 'number' && groupPorts.has(p.port));
      if (j >= 0) {
        reported = true;
        this.report(
          RULES.policyForMulticast,
          ctx,
          ['spec', 'ingress', i, 'ports', j],
          `policy opens the port of a multicast group (${String((asList(r.ports)[j] as Obj).port)}); NetworkPolicy does not govern multicast`,
        );
      }
    });
    if (!reported && this.mentionsMulticast(obj)) {
      this.report(RULES.policyForMulticast, ctx, ['metadata', 'name'], 'NetworkPolicy named or annotated for multicast; NetworkPolicy does not govern multicast');
    }
  }
}

/** `spec.containers[0].x` or `metadata.annotations["a/b"]` as a path. */
function parsePssPath(p: string): Path {
  const out: Path = [];
  for (const m of p.matchAll(/([^.[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string);
    else out.push(m[1]!);
  }
  return out;
}

/** Lints parsed documents: Kubernetes objects (and Lists), or CNI configuration JSON. */
export function lintDocs(srcs: readonly SourceDoc[]): Finding[] {
  const l = new Linter();
  for (const src of srcs) {
    const obj = src.doc.toJS() as unknown;
    if (!isObj(obj) || !isMap(src.doc.contents)) {
      throw new InputError(`${src.file}:${lineOf(src, [])}: read document: expected a Kubernetes object or a CNI configuration (a map)`);
    }
    if (typeof obj.kind === 'string' && typeof obj.apiVersion === 'string') {
      const one = (base: Path, o: Obj): void => {
        if (Array.isArray(o.items) && String(o.kind).endsWith('List')) {
          o.items.forEach((it, i) => {
            if (isObj(it)) one([...base, 'items', i], it);
          });
        } else l.object(src, base, o);
      };
      one([], obj);
    } else if (typeof obj.kind === 'string' || typeof obj.apiVersion === 'string') {
      throw new InputError(`${src.file}:${lineOf(src, [])}: read object: missing ${typeof obj.kind === 'string' ? 'apiVersion' : 'kind'}`);
    } else {
      const name = typeof obj.name === 'string' ? obj.name : typeof obj.Network === 'string' ? 'flannel' : src.file.split('/').pop()!;
      l.cni({ src, base: [], object: `CNI/${name}`, namespace: '(node)' }, [], obj);
    }
  }
  l.finish();
  const order: Record<Severity, number> = { error: 0, warning: 1, info: 2 };
  return l.findings.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || order[a.severity] - order[b.severity] || a.rule.localeCompare(b.rule));
}

export interface LintSummary {
  readonly errors: number;
  readonly warnings: number;
  readonly info: number;
}

export function summarize(findings: readonly Finding[]): LintSummary {
  return {
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
    info: findings.filter((f) => f.severity === 'info').length,
  };
}

/** Human output: one headline per finding, then why and fix, then a summary line. */
export function formatFindings(findings: readonly Finding[], files: number): string {
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${f.file}:${f.line}: ${f.severity} ${f.rule} ${f.name}: ${f.object} ${f.path}`, `  ${f.message}`, `  why: ${f.why}`, `  fix: ${f.fix}`);
  }
  const s = summarize(findings);
  lines.push(`${s.errors} error(s), ${s.warnings} warning(s), ${s.info} info in ${files} file(s)`);
  return `${lines.join('\n')}\n`;
}
