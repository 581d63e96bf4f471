/**
 * One narrow editing interface over two representations: a plain JSON object (the webhook's pod)
 * and a `yaml` Document (inject's input, whose comments and field order must survive). The
 * injection logic is written once against it, so `inject` and the webhook cannot drift.
 */
import { isAlias, isCollection, isMap, isNode, isScalar, isSeq } from 'yaml';
import type { Document, YAMLSeq } from 'yaml';

export type Path = readonly (string | number)[];

export interface Editor {
  /** The plain value at `path`, or undefined. */
  get(path: Path): unknown;
  /** Sets a value, creating missing maps on the way. */
  set(path: Path, value: unknown): void;
  /** Deletes a map key (no-op when absent). */
  delete(path: Path): void;
  /** Inserts into the list at `path`, creating the list when missing. */
  insert(path: Path, index: number, value: unknown): void;
  /** Removes one list item. */
  removeAt(path: Path, index: number): void;
}

type Obj = Record<string | number, unknown>;

// A value used twice (a selector in two places) must print twice, not as a YAML anchor and alias.
const NO_ALIASES = { aliasDuplicateObjects: false } as const;

export class JsonEditor implements Editor {
  constructor(readonly root: Obj) {}

  get(path: Path): unknown {
    let cur: unknown = this.root;
    for (const key of path) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = (cur as Obj)[key];
    }
    return cur;
  }

  private parent(path: Path, create: boolean): Obj | undefined {
    let cur: Obj = this.root;
    for (const key of path.slice(0, -1)) {
      let next = cur[key];
      if (next === null || next === undefined || typeof next !== 'object') {
        if (!create) return undefined;
        next = {};
        cur[key] = next;
      }
      cur = next as Obj;
    }
    return cur;
  }

  set(path: Path, value: unknown): void {
    this.parent(path, true)![path[path.length - 1]!] = structuredClone(value);
  }

  delete(path: Path): void {
    const p = this.parent(path, false);
    if (p) delete p[path[path.length - 1]!];
  }

  insert(path: Path, index: number, value: unknown): void {
    const list = this.get(path);
    if (Array.isArray(list)) list.splice(index, 0, structuredClone(value));
    else this.set(path, [value]);
  }

  removeAt(path: Path, index: number): void {
    const list = this.get(path);
    if (Array.isArray(list)) list.splice(index, 1);
  }
}

export class YamlEditor implements Editor {
  constructor(readonly doc: Document) {}

  /**
   * Replaces aliases on the way to `path` (inclusive) by copies of their anchored nodes. Editing
   * through an alias would change the anchor too: a label added to a template's labels would also
   * land in a selector that shares them via `&labels` / `*labels`.
   */
  private unalias(path: Path): void {
    for (let n = 1; n <= path.length; n++) {
      const v = this.doc.getIn(path.slice(0, n), true);
      if (!isAlias(v)) continue;
      const target = v.resolve(this.doc);
      if (!target) continue;
      if (!isCollection(target) && !isScalar(target)) continue;
      const copy = target.clone() as typeof target & { anchor?: string };
      copy.anchor = undefined;
      this.doc.setIn(path.slice(0, n), copy);
    }
  }

  get(path: Path): unknown {
    const v = this.doc.getIn(path, true);
    return isNode(v) ? v.toJS(this.doc) : v;
  }

  set(path: Path, value: unknown): void {
    this.unalias(path.slice(0, -1));
    // A `key:` with no value parses as a null scalar; setIn cannot descend through it.
    for (let n = 1; n < path.length; n++) {
      const v = this.doc.getIn(path.slice(0, n), true);
      if (v !== undefined && !isMap(v) && !isSeq(v) && (isNode(v) ? v.toJS(this.doc) === null : v === null)) {
        this.doc.setIn(path.slice(0, n), this.doc.createNode({}));
      }
    }
    this.doc.setIn(path, this.doc.createNode(value, NO_ALIASES));
  }

  delete(path: Path): void {
    this.unalias(path.slice(0, -1));
    if (this.doc.hasIn(path)) this.doc.deleteIn(path);
  }

  insert(path: Path, index: number, value: unknown): void {
    this.unalias(path);
    const list = this.doc.getIn(path, true);
    if (!isSeq(list)) {
      this.set(path, [value]);
      return;
    }
    const seq = list as YAMLSeq;
    const first = seq.items[0];
    // A comment above the first item parses as the list's comment; it belongs to that item, so
    // it moves with it instead of ending up above the inserted one.
    if (index === 0 && isNode(first) && seq.commentBefore) {
      first.commentBefore = seq.commentBefore;
      seq.commentBefore = undefined;
    }
    seq.items.splice(index, 0, this.doc.createNode(value, NO_ALIASES));
  }

  removeAt(path: Path, index: number): void {
    this.unalias(path);
    const list = this.doc.getIn(path, true);
    if (isSeq(list)) (list as YAMLSeq).items.splice(index, 1);
  }
}
