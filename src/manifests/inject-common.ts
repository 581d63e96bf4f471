/**
 * What the sidecar and node-mode injections share: the application name a template's member
 * objects are named after, the status annotation an injection records (so a re-run upgrades in
 * place), and the refusal they throw. Pure.
 */
import type { Editor, Path } from './editor.js';
import { MEMBER_LABEL, NAME_ANNOTATION } from './sidecar.js';

/** Why a pod template cannot be injected. */
export class InjectRefusal extends Error {
  override readonly name = 'InjectRefusal';
}

export interface InjectStatus {
  readonly version: string;
  readonly mode: 'native' | 'legacy' | 'node';
  readonly initContainers: readonly string[];
  readonly containers: readonly string[];
  readonly volumes: readonly string[];
}

export interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
// The longest derived name is `<app>-kmcast-key`; Service names are DNS-1035 labels (63 chars).
const MAX_APP = 63 - '-kmcast-key'.length;

/**
 * The application name the member objects are named after: the `kmcast.io/name` annotation, the
 * member label of an earlier injection, `app.kubernetes.io/name`, `app`, then the workload name.
 */
export function appName(tplMeta: Meta | undefined, workloadMeta: Meta | undefined, override?: string): string {
  const candidates = [
    override,
    workloadMeta?.annotations?.[NAME_ANNOTATION],
    tplMeta?.annotations?.[NAME_ANNOTATION],
    tplMeta?.labels?.[MEMBER_LABEL],
    tplMeta?.labels?.['app.kubernetes.io/name'],
    tplMeta?.labels?.app,
    workloadMeta?.name,
  ];
  const name = candidates.find((c): c is string => typeof c === 'string' && c !== '');
  if (!name) {
    throw new InjectRefusal(`no application name: set the annotation ${NAME_ANNOTATION}, the label app.kubernetes.io/name or app (a pod made from generateName has no stable name)`);
  }
  if (!DNS_LABEL.test(name) || name.length > MAX_APP) {
    throw new InjectRefusal(
      `application name "${name}" cannot name a Service: use lower-case letters, digits and '-', starting with a letter, at most ${MAX_APP} characters (set ${NAME_ANNOTATION} or --name)`,
    );
  }
  return name;
}

export function parseStatus(text: unknown): InjectStatus | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const s = JSON.parse(text) as Partial<InjectStatus>;
    const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return {
      version: String(s.version ?? ''),
      mode: s.mode === 'legacy' || s.mode === 'node' ? s.mode : 'native',
      initContainers: list(s.initContainers),
      containers: list(s.containers),
      volumes: list(s.volumes),
    };
  } catch {
    return undefined;
  }
}

export function names(list: unknown): string[] {
  return Array.isArray(list) ? list.map((c) => (c && typeof c === 'object' ? String((c as { name?: unknown }).name) : '')) : [];
}

/** Removes the list items an earlier injection added (by the names its status recorded). */
export function removeNamed(ed: Editor, path: Path, drop: readonly string[]): void {
  const current = names(ed.get(path));
  for (let i = current.length - 1; i >= 0; i--) if (drop.includes(current[i]!)) ed.removeAt(path, i);
}

export interface TemplateContext {
  /** Kind of the object holding the template (Job and CronJob refuse --legacy). */
  readonly kind: string;
  readonly workloadMeta?: Meta;
  readonly name?: string;
}
