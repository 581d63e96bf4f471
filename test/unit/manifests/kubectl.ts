/**
 * Parses YAML that kmcast writes with Kubernetes' own parser: `kubectl kustomize` (go-yaml) runs
 * offline, needs no cluster and rejects what libyaml-style parsers reject (for example a plain
 * `:9470` inside a flow map). Many documents go through one kustomize run, so the unit suite stays
 * fast; only when that run fails is each input run alone, to name the culprit.
 *
 * Beyond "it parses", every object kubectl read must equal, field for field, the object the `yaml`
 * library read from the same text: a value that two parsers read differently is a defect too.
 *
 * Without kubectl: a clear failure when CI=true, else the caller skips with the printed reason.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface KubectlInput {
  /** Names the input in failures (a golden file, a generate mode, a patched pod). */
  readonly label: string;
  /** One or more YAML documents, exactly as kmcast writes them. */
  readonly yaml: string;
}

type Obj = Record<string, unknown>;
const TIMEOUT_MS = 60_000;

let available: string | undefined | null = null;

/** undefined when kubectl kustomize runs here; otherwise why not. */
export function kubectlMissing(): string | undefined {
  if (available !== null) return available;
  const r = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: TIMEOUT_MS });
  available = r.error ? `kubectl not found (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` : r.status !== 0 ? `kubectl version --client exited ${r.status}` : undefined;
  return available;
}

/**
 * For node:test: returns true when kubectl is usable. Without it the test is skipped with the
 * reason printed, or, under CI=true, fails: CI must not pass a check it never ran.
 */
export function requireKubectl(t: { skip(msg?: string): void }): boolean {
  const why = kubectlMissing();
  if (why === undefined) return true;
  if (process.env.CI === 'true') throw new Error(`${why}: CI=true needs kubectl (with kustomize) on PATH to parse kmcast's output with Kubernetes' YAML parser`);
  process.stdout.write(`# skipped: ${why}; install kubectl to parse kmcast's output with Kubernetes' YAML parser\n`);
  t.skip(why);
  return false;
}

const idOf = (o: Obj): string => {
  const m = (o.metadata ?? {}) as Obj;
  return `${String(o.apiVersion)} ${String(o.kind)} ${String(m.namespace ?? '')}/${String(m.name ?? '')}`;
};

/** The objects our own parser reads from a text, with Lists unpacked as kustomize does. */
function ours(text: string): Obj[] {
  const out: Obj[] = [];
  const add = (o: Obj): void => {
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) (o.items as Obj[]).forEach(add);
    else out.push(o);
  };
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length > 0) throw new Error(`yaml library cannot parse its own output: ${d.errors[0]!.message}`);
    const v = d.toJS() as unknown;
    if (v !== null && typeof v === 'object') add(v as Obj);
  }
  return out;
}

function kustomize(dir: string): { ok: true; out: string } | { ok: false; why: string } {
  try {
    return { ok: true, out: execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: TIMEOUT_MS, maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, why: (e.stderr ?? e.message).trim() };
  }
}

/**
 * Runs every input through `kubectl kustomize` and returns the objects kubectl produced. Inputs
 * whose objects share an id (kind, namespace, name) go to different runs, since kustomize refuses
 * duplicates; objects are compared with what the yaml library read. Throws with every failing
 * input's label and kubectl's message.
 */
export function kubectlParse(inputs: readonly KubectlInput[]): Obj[] {
  const why = kubectlMissing();
  if (why !== undefined) throw new Error(why);
  // Greedy batching: an input joins the first batch none of whose ids it repeats.
  const batches: { ids: Set<string>; items: { input: KubectlInput; objs: Obj[] }[] }[] = [];
  for (const input of inputs) {
    const objs = ours(input.yaml);
    const ids = objs.map(idOf);
    if (new Set(ids).size !== ids.length) throw new Error(`${input.label}: two objects share one kind/namespace/name`);
    let batch = batches.find((b) => ids.every((id) => !b.ids.has(id)));
    if (!batch) batches.push((batch = { ids: new Set(), items: [] }));
    ids.forEach((id) => batch.ids.add(id));
    batch.items.push({ input, objs });
  }
  const root = mkdtempSync(join(tmpdir(), 'kmc-kubectl-'));
  const failures: string[] = [];
  const all: Obj[] = [];
  try {
    batches.forEach((b, bi) => {
      const bdir = join(root, `b${bi}`);
      mkdirSync(bdir);
      const files = b.items.map((it, i) => {
        const f = `in${i}.yaml`;
        writeFileSync(join(bdir, f), it.input.yaml);
        return f;
      });
      writeFileSync(join(bdir, 'kustomization.yaml'), `resources:\n${files.map((f) => `  - ${f}`).join('\n')}\n`);
      const r = kustomize(bdir);
      if (!r.ok) {
        // Find the culprits: each input alone.
        b.items.forEach((it, i) => {
          const one = join(root, `b${bi}-${i}`);
          mkdirSync(one);
          writeFileSync(join(one, 'in.yaml'), it.input.yaml);
          writeFileSync(join(one, 'kustomization.yaml'), 'resources:\n  - in.yaml\n');
          const alone = kustomize(one);
          if (!alone.ok) failures.push(`${it.input.label}: kubectl kustomize: ${alone.why}`);
        });
        if (failures.length === 0) failures.push(`batch of ${b.items.map((it) => it.input.label).join(', ')}: kubectl kustomize: ${r.why}`);
        return;
      }
      const theirs = new Map(ours(r.out).map((o) => [idOf(o), o]));
      for (const it of b.items) {
        for (const o of it.objs) {
          const k = theirs.get(idOf(o));
          if (!k) failures.push(`${it.input.label}: ${idOf(o)} missing from kubectl's output`);
          else if (JSON.stringify(sortKeys(k)) !== JSON.stringify(sortKeys(o))) {
            failures.push(`${it.input.label}: ${idOf(o)} reads differently in kubectl:\n  kubectl: ${JSON.stringify(sortKeys(k))}\n  yaml:    ${JSON.stringify(sortKeys(o))}`);
          }
        }
        all.push(...it.objs.map((o) => theirs.get(idOf(o))!).filter(Boolean));
      }
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  if (failures.length > 0) throw new Error(`${failures.length} input(s) that Kubernetes' YAML parser rejects or reads differently:\n${failures.join('\n')}`);
  return all;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Obj)[k])]),
    );
  }
  return v;
}

/**
 * `kubectl kustomize` over one multi-document stream: the objects it printed. Throws with
 * kubectl's message when go-yaml or kustomize refuses the text (or when kubectl is missing).
 */
export function kustomizeText(yaml: string, label = 'manifests'): Obj[] {
  const why = kubectlMissing();
  if (why !== undefined) throw new Error(`${why}: the manifest tests run "kubectl kustomize" on what kmcast emits; install kubectl >= 1.27 (it bundles kustomize) and rerun`);
  const dir = mkdtempSync(join(tmpdir(), 'kmc-kustomize-'));
  try {
    writeFileSync(join(dir, 'resources.yaml'), yaml);
    writeFileSync(join(dir, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - resources.yaml\n');
    return kustomizeDir(dir, label);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `kubectl kustomize DIR`: the objects of a kustomization directory. */
export function kustomizeDir(dir: string, label = dir): Obj[] {
  const why = kubectlMissing();
  if (why !== undefined) throw new Error(`${why}: the manifest tests run "kubectl kustomize"; install kubectl >= 1.27 (it bundles kustomize) and rerun`);
  const r = kustomize(dir);
  if (!r.ok) throw new Error(`kubectl kustomize refused ${label}: ${r.why}`);
  return parseAllDocuments(r.out)
    .map((d) => d.toJS() as Obj)
    .filter((o) => o !== null);
}
