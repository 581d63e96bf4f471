/**
 * The mutating admission webhook's logic, pure: an AdmissionReview v1 in, an AdmissionReview
 * (with a base64 JSONPatch) or an HTTP error out. It calls the same `injectTemplate` as
 * `kmcast inject`, through `injectPod`, so both produce the same pod.
 */
import jsonpatch from 'fast-json-patch';
import { InjectRefusal, injectPod } from './inject.js';
import { MODE_ANNOTATION } from './node-inject.js';
import { INJECT_LABEL } from './sidecar.js';
import type { AgentOptions } from './sidecar.js';

export interface WebhookOptions extends AgentOptions {
  /** Deny pods that ask for injection but cannot be injected (default: admit them unchanged with a warning). */
  readonly strict: boolean;
}

export interface HttpReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function badRequest(why: string): HttpReply {
  return { status: 400, body: { error: `read AdmissionReview: ${why}; expected apiVersion admission.k8s.io/v1, kind AdmissionReview, request.uid` } };
}

/**
 * Deeper than any pod (managedFields, the deepest part, stays under 30). Beyond it the recursive
 * copy and diff could exhaust the stack; such a pod is answered as not injectable, with the reason.
 */
export const MAX_DEPTH = 100;

/** True when `v` nests deeper than `max` levels; iterative, so a deep value cannot overflow the stack. */
export function deeperThan(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d >= max) return true;
    for (const c of Array.isArray(x) ? x : Object.values(x as Record<string, unknown>)) if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
  }
  return false;
}

function review(response: Record<string, unknown>): HttpReply {
  return { status: 200, body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response } };
}

/** Answers one AdmissionReview. Never throws: malformed input gets a 400 with the reason. */
export function handleAdmissionReview(body: unknown, o: WebhookOptions): HttpReply {
  if (!isObj(body)) return badRequest('the body is not a JSON object');
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    return badRequest(`got apiVersion ${JSON.stringify(body.apiVersion)}, kind ${JSON.stringify(body.kind)}`);
  }
  const req = body.request;
  if (!isObj(req) || typeof req.uid !== 'string' || req.uid === '') return badRequest('request.uid is missing');
  const uid = req.uid;
  const allow = (extra: Record<string, unknown> = {}): HttpReply => review({ uid, allowed: true, ...extra });

  const kind = req.kind as { group?: unknown; kind?: unknown } | undefined;
  if (!isObj(kind) || kind.group !== '' || kind.kind !== 'Pod' || req.operation !== 'CREATE' || (req.subResource !== undefined && req.subResource !== '')) {
    // Only pod creation is ours; anything else the API server sends by a misconfiguration passes.
    return allow();
  }
  const pod = req.object;
  // Without an object there are no labels, so the pod did not opt in: it is not ours to refuse.
  if (!isObj(pod)) return allow({ warnings: ['kmcast: request.object is not an object; nothing to inject'] });
  const meta = isObj(pod.metadata) ? pod.metadata : {};
  const labels = isObj(meta.labels) ? meta.labels : {};
  if (labels[INJECT_LABEL] !== 'enabled') return allow();
  const refuse = (reason: string): HttpReply => {
    const why = `kmcast: pod not injected: ${reason}`;
    if (o.strict) return review({ uid, allowed: false, status: { code: 422, message: why } });
    return allow({ warnings: [why] });
  };
  if (!isObj(pod.spec)) return refuse('request.object has no spec');
  if (deeperThan(pod, MAX_DEPTH)) return refuse(`the pod object is nested deeper than ${MAX_DEPTH} levels`);
  // A pod may pick its mode (annotation kmcast.io/mode: node | sidecar); the webhook's --mode otherwise.
  const annotations = isObj(meta.annotations) ? meta.annotations : {};
  const asked = annotations[MODE_ANNOTATION];
  if (asked !== undefined && asked !== 'node' && asked !== 'sidecar') {
    return refuse(`annotation ${MODE_ANNOTATION}: ${JSON.stringify(asked)} is neither "node" nor "sidecar"`);
  }
  const mode = asked ?? o.mode ?? 'sidecar';

  try {
    const { pod: patched } = injectPod(pod, { ...o, mode });
    const patch = jsonpatch.compare(pod, patched);
    if (patch.length === 0) return allow();
    return allow({ patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
  } catch (err) {
    if (!(err instanceof InjectRefusal)) {
      // A bug: say so in the answer (a warning the user sees, or the denial), never silently.
      const why = `kmcast: inject pod failed: ${(err as Error).message}`;
      if (o.strict) return review({ uid, allowed: false, status: { code: 500, message: why } });
      return allow({ warnings: [why] });
    }
    return refuse(err.message);
  }
}
