/**
 * Reading and writing multi-document YAML through the `yaml` Document API, so comments and field
 * order survive an edit. Every parse error becomes one InputError line: `file:line: why`.
 */
import { readFileSync } from 'node:fs';
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
    out.push({ file, doc, lines });
  }
  return out;
}

/** Reads a file (or stdin for `-`) and parses it. */
export function readYamlFile(file: string, stdin?: () => string): SourceDoc[] {
  let text: string;
  try {
    text = file === '-' ? (stdin ?? (() => readFileSync(0, 'utf8')))() : readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`read ${file}: ${code === 'ENOENT' ? 'no such file' : String((err as Error).message)}`, { cause: err });
  }
  return parseYamlDocs(text, file === '-' ? '<stdin>' : file);
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
 * Plain scalars that every YAML parser reads the same inside a flow collection. The YAML 1.2 spec
 * allows more (`{ value: :9470 }`), but libyaml and go-yaml (kubectl) refuse a plain scalar that
 * starts with an indicator, and `:`, `#` and the flow indicators are ambiguous inside `{ }`.
 */
const FLOW_SAFE_PLAIN = /^(?:[A-Za-z0-9_./$()+=~]|-(?=[A-Za-z0-9_./$()+=~]))[A-Za-z0-9_./$()+=~ -]*(?<! )$/;

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
