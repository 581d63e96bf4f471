/**
 * Validates objects against the Kubernetes OpenAPI schemas bundled with kubernetes-models (v4.5.1:
 * schemas of Kubernetes 1.33, which include the init container `restartPolicy` of native
 * sidecars). Note: those schemas check types, enums and required fields but do not reject unknown
 * fields, so every test also makes targeted asserts on the fields it cares about.
 */
import * as models from 'kubernetes-models';

type ModelClass = new (data: unknown) => { validate(): void };

function groupModule(apiVersion: string): Record<string, unknown> | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const key =
    group === ''
      ? undefined
      : group!
          .split('.')
          .map((p, i) => (i === 0 ? p : p[0]!.toUpperCase() + p.slice(1)))
          .join('');
  const root = models as unknown as Record<string, Record<string, unknown>>;
  if (key === undefined) return root[version!];
  return root[key]?.[version!] as Record<string, unknown> | undefined;
}

/** The model class of a built-in kind, or undefined for kinds the schemas do not know (CRDs). */
export function modelFor(apiVersion: string, kind: string): ModelClass | undefined {
  const mod = groupModule(apiVersion);
  const cls = mod?.[kind] as (ModelClass & { kind?: string }) | undefined;
  return typeof cls === 'function' && cls.kind === kind ? cls : undefined;
}

/** Validates one object (Lists item by item); returns false when its kind has no schema. */
export function validateK8s(obj: unknown): boolean {
  const o = obj as { apiVersion?: string; kind?: string; items?: unknown[] };
  if (typeof o?.apiVersion !== 'string' || typeof o.kind !== 'string') throw new Error(`not a Kubernetes object: ${JSON.stringify(obj).slice(0, 80)}`);
  if (o.kind === 'List') {
    for (const item of o.items ?? []) validateK8s(item);
    const cls = modelFor('v1', 'List');
    if (cls) new cls(obj).validate();
    return true;
  }
  const cls = modelFor(o.apiVersion, o.kind);
  if (!cls) return false;
  try {
    new cls(obj).validate();
  } catch (err) {
    throw new Error(`${o.kind} ${JSON.stringify((obj as { metadata?: { name?: string } }).metadata?.name)} fails the Kubernetes schema: ${(err as Error).message}`);
  }
  return true;
}
