/**
 * Reading and writing multi-document YAML through the `yaml` Document API, so comments and field
 * order survive an edit. Every parse error becomes one InputError line: `file:line: why`.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { Document, LineCounter, parseAllDocuments, isCollection, isMap, isSeq, isScalar, visit } from 'yaml';
import type { Node, Scalar } from 'yaml';
import { InputError } from '../errors.js';

export interface SourceDoc {
  readonly file: string;
  readonly doc: Document;
  readonly lines: LineCounter;
}

/** Parses all documents of one YAML text; empty documents (a trailing `---`) are dropped. */
export function parseYamlDocs(text: string, file: string): SourceDoc[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  if (!Array.isArray(docs)) {
    // An empty stream parses as an EmptyStream object: no documents.
    return [];
  }
  const out: SourceDoc[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const line = lines.linePos(err.pos[0]).line;
      const why = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new InputError(`${file}:${line}: parse YAML: ${why}`);
    }
    if (doc.contents === null) continue;
    // Every reader turns the document into plain values, which expands aliases; the yaml library
    // refuses beyond 100 expansions per alias (a "billion laughs" bomb). Refuse here, as input.
    try {
      doc.toJS();
    } catch (err) {
      if (!(err instanceof ReferenceError)) throw err;
      const line = doc.range ? lines.linePos(doc.range[0]).line : 1;
      throw new InputError(`${file}:${line}: parse YAML: ${err.message.replace(/\.$/, '')} (too many alias expansions)`, { cause: err });
    }
    out.push({ file, doc, lines });
  }
  return out;
}

/**
 * The most bytes one input (a file or stdin) may hold. Manifests are kilobytes; a `kubectl get
 * -o yaml` of a large namespace is a few megabytes. The limit keeps a stray `/dev/zero` or a
 * runaway pipe from growing the process without bound.
 */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;
const MIB = MAX_INPUT_BYTES / 1024 / 1024;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Reads an open descriptor to its end, refusing more than MAX_INPUT_BYTES. */
function readCapped(fd: number, name: string): string {
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, MAX_INPUT_BYTES + 1 - size));
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      // A non-blocking stdin (a pipe some shells hand over) has no data yet: wait, then retry.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 10);
        continue;
      }
      throw err;
    }
    if (n === 0) break;
    size += n;
    if (size > MAX_INPUT_BYTES) throw new InputError(`read ${name}: larger than ${MIB} MiB, the input limit; split the input into several files`);
    chunks.push(buf.subarray(0, n));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function kindOf(st: ReturnType<typeof fstatSync>): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a file';
}

/**
 * The text of a regular file, or of stdin for `-`, at most MAX_INPUT_BYTES. A FIFO, a device or
 * a directory is refused without reading (a FIFO is opened non-blocking, so nothing hangs).
 * `flag` prefixes the message (`--file: read x: ...`).
 */
export function readInputText(file: string, stdin?: () => string, flag?: string): string {
  const name = file === '-' ? '<stdin>' : file;
  const prefix = flag ? `${flag}: ` : '';
  try {
    if (file === '-') {
      if (stdin) {
        const text = stdin();
        if (Buffer.byteLength(text) > MAX_INPUT_BYTES) throw new InputError(`read ${name}: larger than ${MIB} MiB, the input limit; split the input into several files`);
        return text;
      }
      return readCapped(0, name);
    }
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new InputError(`read ${name}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String((err as Error).message)}`, { cause: err });
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new InputError(`read ${name}: not a regular file (${kindOf(st)}); give a file, or '-' for stdin`);
      if (st.size > MAX_INPUT_BYTES) throw new InputError(`read ${name}: larger than ${MIB} MiB, the input limit; split the input into several files`);
      return readCapped(fd, name);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof InputError) throw prefix ? new InputError(`${prefix}${err.message}`, { cause: err.cause }) : err;
    throw new InputError(`${prefix}read ${name}: ${String((err as Error).message)}`, { cause: err });
  }
}

/** Reads a file (or stdin for `-`) and parses it. */
export function readYamlFile(file: string, stdin?: () => string, flag?: string): SourceDoc[] {
  return parseYamlDocs(readInputText(file, stdin, flag), file === '-' ? '<stdin>' : file);
}

/** The 1-based line of the node at `path` in a document, or of the closest ancestor that exists. */
export function lineOf(src: SourceDoc, path: readonly (string | number)[]): number {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? src.doc.contents : (src.doc.getIn(path.slice(0, n), true) as Node | undefined);
    if (node && (isMap(node) || isSeq(node) || isScalar(node)) && node.range) return src.lines.linePos(node.range[0]).line;
  }
  return 1;
}

/**
 * lineOf for a document that is only read, in constant time per lookup: the document's nodes are
 * indexed by path once. `getIn` scans a map's pairs, so looking up each of N keys of one map is
 * N^2 (a ConfigMap of 20,000 groups took 86 s); the index keeps lint linear. A document changed
 * after the first lookup needs lineOf.
 */
export function indexedLineOf(src: SourceDoc): (path: readonly (string | number)[]) => number {
  let index: Map<string, number> | undefined;
  const key = (path: readonly (string | number)[]): string => JSON.stringify(path.map(String));
  const build = (): Map<string, number> => {
    const out = new Map<string, number>();
    const walk = (node: unknown, path: (string | number)[]): void => {
      if (!(isMap(node) || isSeq(node) || isScalar(node))) return;
      if (node.range) out.set(key(path), src.lines.linePos(node.range[0]).line);
      if (isMap(node)) {
        for (const pair of node.items) {
          const k = isScalar(pair.key) ? pair.key.value : pair.key;
          if (typeof k === 'string' || typeof k === 'number') walk(pair.value, [...path, k]);
        }
      } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...path, i]));
    };
    walk(src.doc.contents, []);
    return out;
  };
  return (path) => {
    index ??= build();
    for (let n = path.length; n >= 0; n--) {
      const line = index.get(key(path.slice(0, n)));
      if (line !== undefined) return line;
    }
    return 1;
  };
}

/**
 * Plain scalars that every YAML parser reads the same inside a flow collection. The YAML 1.2 spec
 * allows more (`{ value: :9470 }`), but libyaml and go-yaml (kubectl) refuse a plain scalar that
 * starts with an indicator, and `:`, `#` and the flow indicators are ambiguous inside `{ }`.
 */
const FLOW_SAFE_PLAIN = /^(?:[A-Za-z0-9_./$()+=~]|-(?=[A-Za-z0-9_./$()+=~-]))[A-Za-z0-9_./$()+=~ -]*(?<! )$/;

/**
 * Double-quotes the plain string scalars inside flow collections that another parser could refuse
 * or misread. Inserting block-style values into a flow map (JSON input, `{ ... }` style) makes
 * them flow too, and what is a fine plain scalar in block style is not always one there.
 */
function quoteUnsafeFlowScalars(doc: Document): void {
  visit(doc, {
    Scalar(_key, node: Scalar, path) {
      if (typeof node.value !== 'string' || (node.type !== undefined && node.type !== 'PLAIN')) return;
      if (FLOW_SAFE_PLAIN.test(node.value)) return;
      if (path.some((a) => isCollection(a) && a.flow === true)) node.type = 'QUOTE_DOUBLE';
    },
  });
}

/** Serialises documents as one multi-document YAML stream. */
export function stringifyDocs(docs: readonly Document[]): string {
  return docs
    .map((d) => {
      quoteUnsafeFlowScalars(d);
      return d.toString({ lineWidth: 0 });
    })
    .map((s) => (s.startsWith('---') ? s : `---\n${s}`))
    .join('');
}

/** A new Document from a plain object (emitted objects), with an optional leading comment. */
export function newDoc(value: unknown, comment?: string): Document {
  const doc = new Document(value, { aliasDuplicateObjects: false });
  if (comment) doc.commentBefore = comment;
  return doc;
}
