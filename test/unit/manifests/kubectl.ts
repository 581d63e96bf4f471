/**
 * `kubectl kustomize` over emitted manifests: Kubernetes' own YAML parser (go-yaml) and
 * kustomize's resource checks, offline (no API server). Our own parser (`yaml`) accepts some text
 * go-yaml refuses, so every golden and generate test runs its output through this as well.
 * kubectl is a test dependency: when it is missing the test fails and says how to get it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, unknown>;

let checked = false;

function requireKubectl(): void {
  if (checked) return;
  const r = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `kubectl is missing (${r.error ? (r.error as NodeJS.ErrnoException).code : `exit ${r.status}`}): the manifest tests run "kubectl kustomize" on what kmcast emits; install kubectl >= 1.27 (it bundles kustomize) and rerun`,
    );
  }
  checked = true;
}

/**
 * Builds `yaml` (one multi-document stream) with `kubectl kustomize` and returns the objects it
 * printed. Throws with kubectl's message when go-yaml or kustomize refuses the text.
 */
export function kustomizeText(yaml: string, label = 'manifests'): Obj[] {
  requireKubectl();
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
  requireKubectl();
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) throw new Error(`kubectl kustomize refused ${label}: ${(r.stderr || String(r.error)).trim()}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter((o) => o !== null);
}
