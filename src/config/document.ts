// Reading a configuration file's text into a small tree that remembers where
// every value came from (line and column), so that validation can name the
// place of each mistake. YAML and JSON both come through here: JSON is
// checked strictly with JSON.parse, then read with the YAML parser for the
// positions (JSON is valid YAML 1.2).
//
// Only this file knows the `yaml` package; the rest of src/config sees
// `ConfigNode`s.
//
// Aliases are expanded into copies, so a few hundred bytes of nested aliases
// (a "billion laughs") could stand for billions of nodes. Two bounds refuse
// that before any time or memory goes into it: the `yaml` library's own
// alias count (MAX_ALIAS_COUNT, its `maxAliasCount`), and a cap on the nodes
// aliases may add to the tree (MAX_ALIAS_NODES). A real configuration uses a
// few anchors a few times and meets neither.

import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';

/** 1-based line and column. */
export interface Position {
  readonly line: number;
  readonly col: number;
}

interface NodeBase {
  /** Where the node starts. */
  readonly pos: Position;
  /**
   * Where to point when something about the node as a whole is wrong (a
   * missing field, a wrong type): the key that introduced it (`nightly:`),
   * or the node itself for a sequence item.
   */
  readonly at: Position;
}

export interface MapEntry {
  readonly key: string;
  readonly keyPos: Position;
  readonly value: ConfigNode;
}

export interface MapNode extends NodeBase {
  readonly kind: 'map';
  readonly entries: readonly MapEntry[];
}

export interface SeqNode extends NodeBase {
  readonly kind: 'seq';
  readonly items: readonly ConfigNode[];
}

export interface ScalarNode extends NodeBase {
  readonly kind: 'scalar';
  readonly value: string | number | boolean | null;
}

export type ConfigNode = MapNode | SeqNode | ScalarNode;

export type ConfigFormat = 'yaml' | 'json';

/** A problem found while reading: the position and the message, no field path (there is none yet). */
export interface SyntaxProblem {
  readonly pos: Position | undefined;
  readonly message: string;
}

export interface ParsedText {
  /** The document's root, or undefined when the text could not be parsed (see `problems`). */
  readonly root: ConfigNode | undefined;
  readonly problems: readonly SyntaxProblem[];
}

/** "json" for a .json file, "yaml" for .yaml/.yml; otherwise by content (a leading "{" means JSON). */
export function detectFormat(fileName: string, text: string): ConfigFormat {
  const lower = fileName.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  return text.trimStart().startsWith('{') ? 'json' : 'yaml';
}

const START: Position = { line: 1, col: 1 };

/** The `yaml` library's `maxAliasCount`: how far aliases may multiply (uses of an anchor × the aliases inside it). */
export const MAX_ALIAS_COUNT = 1000;
/** At most this many nodes may come from expanding aliases (the copies `convert` makes). */
export const MAX_ALIAS_NODES = 10_000;

const ALIAS_BOMB =
  'the aliases (*name) in this file expand to too much (more than the limits of ' +
  `${MAX_ALIAS_COUNT} alias uses or ${MAX_ALIAS_NODES} copied values); an "alias bomb" is refused. Write the repeated parts out, or use fewer nested aliases`;

/** Counts what alias expansion has copied; throws AliasBomb past the limit. */
class AliasBudget {
  used = 0;
  spend(): void {
    if (++this.used > MAX_ALIAS_NODES) throw new AliasBomb();
  }
}

class AliasBomb extends Error {}

export function parseConfigText(text: string, format: ConfigFormat): ParsedText {
  const lines = new LineCounter();
  const posOf = (offset: number): Position => lines.linePos(offset);
  if (format === 'json') {
    const problem = checkJson(text);
    if (problem !== undefined) return { root: undefined, problems: [{ pos: problem.offset === undefined ? undefined : positionAt(text, problem.offset), message: problem.message }] };
  }
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: false, version: '1.2' });
  const problems = syntaxProblems(text, doc.errors, posOf);
  if (problems.length > 0) return { root: undefined, problems };
  if (doc.contents === null) return { root: undefined, problems: [{ pos: START, message: 'the file is empty' }] };
  // The library counts alias uses without expanding anything: a bomb is refused here in milliseconds.
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    if (e instanceof ReferenceError && /alias/i.test(e.message)) return { root: undefined, problems: [{ pos: START, message: ALIAS_BOMB }] };
    // Anything else the conversion below reports with its place.
  }
  try {
    const root = convert(doc, doc.contents, posOf, undefined, new Set(), problems, new AliasBudget());
    return { root, problems };
  } catch (e) {
    if (e instanceof AliasBomb) return { root: undefined, problems: [{ pos: START, message: ALIAS_BOMB }] };
    throw e;
  }
}

/** The line and column of a character offset. */
function positionAt(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}

/**
 * The parser's errors worth showing: every duplicate key, and the first other
 * syntax error (those after it are mostly its echoes), with a hint for the
 * commonest YAML trap in this file: ${VAR} unquoted inside { } or [ ].
 */
function syntaxProblems(text: string, errors: readonly { code: string; message: string; pos: [number, number] }[], posOf: (offset: number) => Position): SyntaxProblem[] {
  const out: SyntaxProblem[] = [];
  let others = 0;
  for (const e of errors) {
    if (e.code !== 'DUPLICATE_KEY' && others++ > 0) continue;
    const pos = posOf(e.pos[0]);
    let message = syntaxMessage(e.code, e.message);
    const line = text.split('\n')[pos.line - 1] ?? '';
    if (e.code !== 'DUPLICATE_KEY' && /[{[][^'"]*[:,[]\s*\$\{/.test(line)) message += ' (inside { } or [ ], a value with ${...} must be quoted: "${VAR}")';
    out.push({ pos, message });
  }
  if (others > 1) out.push({ pos: undefined, message: `${others - 1} more YAML syntax error(s) after the first, probably caused by it; fix it and check again` });
  return out;
}

function syntaxMessage(code: string, message: string): string {
  if (code === 'DUPLICATE_KEY') return 'a key is given twice in the same mapping';
  if (code === 'TAB_AS_INDENT') return 'tabs are not allowed as indentation in YAML; indent with spaces';
  // The parser quotes the offending token; it could be a secret, so it is not repeated.
  const m = message.replace(/: "(?:[^"\\]|\\.)*"$/s, '').replace(/ token in YAML stream$/, '');
  return `YAML syntax: ${m.charAt(0).toLowerCase()}${m.slice(1)}`;
}

/** Strict JSON: what JSON.parse rejects, with the offset when V8 gives one; never a slice of the text (it may hold secrets). */
function checkJson(text: string): { offset?: number; message: string } | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (e) {
    const raw = (e as Error).message;
    const at = /at position (\d+)/.exec(raw);
    // V8 sometimes quotes the text around the error: drop that part.
    const message = raw.replace(/, ".*" is not valid JSON$/s, '').replace(/ in JSON at position \d+.*$/s, '');
    return { ...(at ? { offset: Number(at[1]) } : {}), message: `invalid JSON: ${message.charAt(0).toLowerCase()}${message.slice(1)}` };
  }
}

function convert(
  doc: Document,
  node: YamlNode | null,
  posOf: (offset: number) => Position,
  keyPos: Position | undefined,
  resolving: Set<YamlNode>,
  problems: SyntaxProblem[],
  budget: AliasBudget,
): ConfigNode {
  // Inside an alias's expansion, every node is a copy: it counts against the budget.
  if (resolving.size > 0) budget.spend();
  if (node === null) {
    const p = keyPos ?? START;
    return { kind: 'scalar', value: null, pos: p, at: p };
  }
  const pos = node.range ? posOf(node.range[0]) : (keyPos ?? START);
  const at = keyPos ?? pos;
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (target === undefined || resolving.has(target)) {
      problems.push({ pos, message: `the alias *${node.source} refers to ${target === undefined ? 'no anchor' : 'itself'}` });
      return { kind: 'scalar', value: null, pos, at };
    }
    resolving.add(target);
    // An alias is reported where it is used, not where its anchor is.
    const resolved = convert(doc, target, posOf, keyPos ?? pos, resolving, problems, budget);
    resolving.delete(target);
    return { ...resolved, at };
  }
  if (isMap(node)) {
    const entries: MapEntry[] = [];
    for (const pair of node.items) {
      const k = pair.key as YamlNode | null;
      const kPos = k?.range ? posOf(k.range[0]) : pos;
      if (!isScalar(k) || (typeof k.value !== 'string' && typeof k.value !== 'number' && typeof k.value !== 'boolean')) {
        problems.push({ pos: kPos, message: 'a key must be a plain name' });
        continue;
      }
      entries.push({ key: String(k.value), keyPos: kPos, value: convert(doc, pair.value as YamlNode | null, posOf, kPos, resolving, problems, budget) });
    }
    return { kind: 'map', entries, pos, at };
  }
  if (isSeq(node)) {
    const items = (node.items as (YamlNode | null)[]).map((item) => convert(doc, item, posOf, undefined, resolving, problems, budget));
    return { kind: 'seq', items, pos, at };
  }
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return { kind: 'scalar', value: v, pos, at };
    problems.push({ pos, message: `unsupported value type (${typeof v}); use a string, a number, true/false, a list or a mapping` });
    return { kind: 'scalar', value: null, pos, at };
  }
  problems.push({ pos, message: 'unsupported YAML node' });
  return { kind: 'scalar', value: null, pos, at };
}
