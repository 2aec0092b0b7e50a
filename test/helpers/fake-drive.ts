// A local fake of the Google Drive v3 API, for testing the gdrive:// backend
// without Google: a node:http server on 127.0.0.1 (a free port) that speaks
// the documented subset of the API that src/backends/gdrive.ts uses. Holdfast's
// Drive support is tested against this fake only, never against Google.
//
//   const drive = await startFakeDrive();
//   const root = drive.createFolder('backup');          // a folder id
//   openBackend(`gdrive://${root}`, { gdriveApiRoot: drive.apiRoot, gdriveAccessToken: drive.token });
//   after(() => drive.stop());
//
// Run on its own to try Holdfast by hand (from a checkout, after `npm run build`):
//   node dist/test/helpers/fake-drive.js [port]
// prints the API root, the token and a folder id to use, and serves until Ctrl-C.
//
// Implemented, as the Drive v3 documentation describes it:
// - Authorization: every request needs `Authorization: Bearer <token>`
//   (401 authError otherwise), upload-session requests included.
// - files.list: `q` with `'<id>' in parents`, `name = '…'`, `mimeType = / != '…'`,
//   `trashed = true|false`, `appProperties has { key='…' and value='…' }`,
//   joined by and / or / not and parentheses, string escapes \' and \\;
//   `pageSize` (capped at a small `maxPageSize`, 3 by default, so paging is
//   exercised) and `pageToken`; results in no particular order (newest
//   first here), as the API promises no order without `orderBy`.
// - `fields` partial responses (`nextPageToken,files(id,name)`, nested
//   `capabilities(canAddChildren)`, `*`); without it, the documented default
//   (kind, id, name, mimeType).
// - files.get (metadata; `alt=media` with `Range: bytes=a-b` → 206 +
//   Content-Range, 416 past the end), files.create (metadata only: folders),
//   files.update (metadata: appProperties merge, a null value removes one),
//   files.delete (204; a folder takes its contents with it; 404 if missing).
// - Multipart uploads (`uploadType=multipart`, multipart/related: JSON
//   metadata then media) for create (POST) and update (PATCH); nothing is
//   stored unless the whole request, closing boundary included, arrived.
// - Resumable uploads: POST (new file) or PATCH /files/{id} (new content)
//   with `uploadType=resumable`, X-Upload-Content-Length → 200 + Location
//   (the session URI); chunk PUTs with `Content-Range: bytes a-b/N` → 308 +
//   `Range: bytes=0-x` until the last chunk, which answers 200 with the file
//   (with the initiating request's `fields`); status query (`bytes */N`, no
//   body) → 308 + Range (no Range header when nothing arrived) or 200 when
//   finished; chunks other than the last must be multiples of 256 KiB
//   (400 otherwise); a session the server does not know answers 404.
// - Duplicate names are allowed, for files and folders alike, as in Drive.
// - An interrupted chunk keeps what arrived in whole 256 KiB units, and the
//   session goes on from there (test hook `interruptChunk`; a client that
//   drops the connection mid-chunk gets the same).
// - Listing that lags behind writes, as Drive's does (files.list is served
//   from an index; files.get by id is not): with `listLag(n)`, a file created
//   from then on is missing from the results of the next n files.list
//   queries (a query's first page counts once; its later pages are served
//   from the first page's snapshot), then shows up. Off by default.
//
// Not implemented, or implemented by assumption:
// - Shared drives, corpora/driveId, permissions, sharing, owners, quotas,
//   revisions, trash (trashed is always false; files.delete deletes),
//   Google Docs types and conversion, exports, changes, batch requests,
//   `orderBy`, `spaces`, `uploadType=media`, search operators other than those
//   above (`contains`, dates, fullText…): they answer 400 invalidQuery.
// - Any normalisation Drive may apply to names (the fake keeps names byte for
//   byte), and Drive's real limits (file sizes, property counts, the 124-byte
//   property limit, rate limits) except through injected faults.
// - A chunk that does not start at the session's received offset is answered
//   400 here; Drive's exact answer is not documented, and gdrive.ts never
//   sends one (it asks the session first).
// - Cancelling a session with DELETE on the session URI answers 499 as
//   Google's upload servers do for Cloud Storage; Drive's documentation does
//   not describe cancellation.
// - Error bodies follow Google's JSON error format (error.code, .message,
//   .errors[0].reason); messages are the fake's own.

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FOLDER_MIME = 'application/vnd.google-apps.folder';
export const UNIT = 256 * 1024;

export interface FakeFile {
  readonly id: string;
  name: string;
  readonly mimeType: string;
  parents: string[];
  appProperties: Record<string, string>;
  content: Buffer;
  readonly createdTime: number;
  modifiedTime: number;
}

interface Session {
  readonly id: string;
  /** For an update (PATCH /files/{id}): the file whose content is replaced. */
  readonly fileId?: string;
  readonly metadata: Record<string, unknown>;
  readonly total: number | undefined;
  readonly mimeType: string;
  readonly fields: string | undefined;
  chunks: Buffer[];
  received: number;
  /** Set once the last byte arrived: the file it made. */
  doneFileId?: string;
}

export interface InjectedFault {
  /** Which operation (see `FakeDriveStats.ops` names), or any when absent. */
  readonly op?: string;
  readonly status: number;
  readonly reason?: string;
  /** How many requests get it (default 1). */
  count?: number;
}

export interface FakeDriveStats {
  /** Requests per operation: files.list, files.get, files.media, files.create, files.update, files.delete, upload.multipart, upload.start, upload.chunk, upload.status, upload.cancel. */
  readonly ops: Map<string, number>;
  /** Body bytes that arrived in resumable chunk PUTs (interrupted ones included). */
  chunkBytes: number;
  /** Body bytes of multipart (single request) uploads. */
  multipartBytes: number;
  /** The most chunk PUTs one session ever had in flight at once (Drive's sessions take one at a time). */
  maxChunksInFlight: number;
}

export interface FakeDrive {
  /** e.g. http://127.0.0.1:43121/ — pass as `gdriveApiRoot`. */
  readonly apiRoot: string;
  /** The one access token the fake accepts. */
  readonly token: string;
  readonly stats: FakeDriveStats;
  resetStats(): void;
  /** Creates a folder (in `parent`, else at the top) and returns its id. */
  createFolder(name: string, parent?: string): string;
  /** A file written by someone else (no Holdfast properties unless given). */
  createFile(parent: string, name: string, content: Buffer, appProperties?: Record<string, string>): string;
  /** Every file and folder, as stored. */
  all(): readonly FakeFile[];
  /** Files (not folders) whose ancestors include `folderId`, with their path below it ("a/b/c.txt"). */
  filesUnder(folderId: string): { path: string; file: FakeFile }[];
  /**
   * A coming chunk PUT (the next one, or the `nth` from now, 1-based) is cut
   * off after `afterBytes` body bytes: the connection is destroyed, and the
   * session keeps what arrived in whole 256 KiB units.
   */
  interruptChunk(afterBytes: number, nth?: number): void;
  /** The next matching requests fail with this status (and Drive error reason). */
  failNext(fault: InjectedFault): void;
  /** Forgets upload sessions (all, or one by its upload_id): they answer 404, as an expired session does. */
  dropSessions(uploadId?: string): void;
  /**
   * Eventual consistency: every file created from now on is left out of the
   * next `queries` files.list queries, then listed as usual; 0 turns it off
   * for files created afterwards (files already hidden stay hidden for their
   * count). files.get, update and delete by id always see every file.
   */
  listLag(queries: number): void;
  /** Ends every file's lag now: the next files.list query shows them all. */
  reveal(): void;
  /** Open and finished upload sessions: upload_id, bytes received, total. */
  sessions(): { id: string; received: number; total: number | undefined; done: boolean }[];
  stop(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

// ---- the query language (the subset gdrive.ts uses) -----------------------

type Query =
  | { readonly kind: 'and' | 'or'; readonly left: Query; readonly right: Query }
  | { readonly kind: 'not'; readonly inner: Query }
  | { readonly kind: 'inParents'; readonly id: string }
  | { readonly kind: 'cmp'; readonly field: 'name' | 'mimeType' | 'trashed'; readonly op: '=' | '!='; readonly value: string | boolean }
  | { readonly kind: 'appProperty'; readonly key: string; readonly value: string };

type Token = { readonly t: 'str'; readonly v: string } | { readonly t: 'word'; readonly v: string } | { readonly t: 'sym'; readonly v: string };

function tokenize(q: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let v = '';
      i++;
      for (;;) {
        if (i >= q.length) throw new HttpError(400, 'invalidQuery', 'Invalid Value: unterminated string in q');
        const d = q[i]!;
        if (d === '\\') {
          const e = q[i + 1];
          if (e !== "'" && e !== '\\') throw new HttpError(400, 'invalidQuery', 'Invalid Value: bad escape in q');
          v += e;
          i += 2;
        } else if (d === "'") {
          i++;
          break;
        } else {
          v += d;
          i++;
        }
      }
      out.push({ t: 'str', v });
    } else if (c === '!' && q[i + 1] === '=') {
      out.push({ t: 'sym', v: '!=' });
      i += 2;
    } else if ('=(){}'.includes(c)) {
      out.push({ t: 'sym', v: c });
      i++;
    } else {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(q.slice(i));
      if (m === null) throw new HttpError(400, 'invalidQuery', `Invalid Value: unexpected "${c}" in q`);
      out.push({ t: 'word', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

function parseQuery(q: string): Query {
  const toks = tokenize(q);
  let pos = 0;
  const bad = (what: string): HttpError => new HttpError(400, 'invalidQuery', `Invalid Value: ${what} in q (the fake supports only the subset gdrive.ts uses)`);
  const peek = (): Token | undefined => toks[pos];
  const next = (): Token => {
    const t = toks[pos++];
    if (t === undefined) throw bad('unexpected end');
    return t;
  };
  const expect = (t: Token['t'], v?: string): Token => {
    const tok = next();
    if (tok.t !== t || (v !== undefined && tok.v !== v)) throw bad(`expected ${v ?? t}, found ${tok.v}`);
    return tok;
  };
  const isWord = (t: Token | undefined, v: string): boolean => t !== undefined && t.t === 'word' && t.v.toLowerCase() === v;
  function or(): Query {
    let left = and();
    while (isWord(peek(), 'or')) {
      pos++;
      left = { kind: 'or', left, right: and() };
    }
    return left;
  }
  function and(): Query {
    let left = unary();
    while (isWord(peek(), 'and')) {
      pos++;
      left = { kind: 'and', left, right: unary() };
    }
    return left;
  }
  function unary(): Query {
    const t = peek();
    if (isWord(t, 'not')) {
      pos++;
      return { kind: 'not', inner: unary() };
    }
    if (t?.t === 'sym' && t.v === '(') {
      pos++;
      const inner = or();
      expect('sym', ')');
      return inner;
    }
    return predicate();
  }
  function predicate(): Query {
    const t = next();
    if (t.t === 'str') {
      expect('word', 'in');
      expect('word', 'parents');
      return { kind: 'inParents', id: t.v };
    }
    if (t.t !== 'word') throw bad(`unexpected ${t.v}`);
    if (t.v === 'appProperties') {
      expect('word', 'has');
      expect('sym', '{');
      expect('word', 'key');
      expect('sym', '=');
      const key = expect('str').v;
      if (!isWord(next(), 'and')) throw bad('expected and');
      expect('word', 'value');
      expect('sym', '=');
      const value = expect('str').v;
      expect('sym', '}');
      return { kind: 'appProperty', key, value };
    }
    if (t.v !== 'name' && t.v !== 'mimeType' && t.v !== 'trashed') throw bad(`unsupported field ${t.v}`);
    const op = next();
    if (op.t !== 'sym' || (op.v !== '=' && op.v !== '!=')) throw bad(`unsupported operator ${op.v}`);
    const v = next();
    if (t.v === 'trashed') {
      if (v.t !== 'word' || (v.v !== 'true' && v.v !== 'false')) throw bad('trashed takes true or false');
      return { kind: 'cmp', field: 'trashed', op: op.v, value: v.v === 'true' };
    }
    if (v.t !== 'str') throw bad(`${t.v} takes a string`);
    return { kind: 'cmp', field: t.v, op: op.v, value: v.v };
  }
  const q0 = or();
  if (pos !== toks.length) throw bad(`unexpected ${toks[pos]!.v}`);
  return q0;
}

function matches(q: Query, f: FakeFile): boolean {
  switch (q.kind) {
    case 'and':
      return matches(q.left, f) && matches(q.right, f);
    case 'or':
      return matches(q.left, f) || matches(q.right, f);
    case 'not':
      return !matches(q.inner, f);
    case 'inParents':
      return f.parents.includes(q.id);
    case 'appProperty':
      return f.appProperties[q.key] === q.value;
    case 'cmp': {
      const actual = q.field === 'trashed' ? false : q.field === 'name' ? f.name : f.mimeType;
      return q.op === '=' ? actual === q.value : actual !== q.value;
    }
  }
}

// ---- partial responses (`fields`) ------------------------------------------

type Selection = Map<string, Selection | true>;

function parseFields(fields: string): Selection {
  let pos = 0;
  function list(): Selection {
    const sel: Selection = new Map();
    for (;;) {
      const m = /^\s*([A-Za-z_*][A-Za-z0-9_]*)\s*/.exec(fields.slice(pos));
      if (m === null) throw new HttpError(400, 'invalidParameter', `Invalid field selection ${fields}`);
      pos += m[0].length;
      if (fields[pos] === '(') {
        pos++;
        sel.set(m[1]!, list());
        if (fields[pos] !== ')') throw new HttpError(400, 'invalidParameter', `Invalid field selection ${fields}`);
        pos++;
      } else {
        sel.set(m[1]!, true);
      }
      while (fields[pos] === ' ') pos++;
      if (fields[pos] === ',') {
        pos++;
        continue;
      }
      return sel;
    }
  }
  const sel = list();
  if (pos !== fields.length) throw new HttpError(400, 'invalidParameter', `Invalid field selection ${fields}`);
  return sel;
}

function select(obj: Record<string, unknown>, sel: Selection): Record<string, unknown> {
  if (sel.has('*')) return obj;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of sel) {
    if (!(k in obj) || obj[k] === undefined) continue;
    const v = obj[k];
    if (sub === true) out[k] = v;
    else if (Array.isArray(v)) out[k] = (v as unknown[]).map((x) => (typeof x === 'object' && x !== null ? select(x as Record<string, unknown>, sub) : x));
    else if (typeof v === 'object' && v !== null) out[k] = select(v as Record<string, unknown>, sub);
  }
  return out;
}

const DEFAULT_FILE_FIELDS = parseFields('kind,id,name,mimeType');
const DEFAULT_LIST_FIELDS = parseFields('kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)');

// ---- the server -------------------------------------------------------------

export async function startFakeDrive(options: { maxPageSize?: number; token?: string; port?: number } = {}): Promise<FakeDrive> {
  const token = options.token ?? `fake-token-${randomBytes(8).toString('hex')}`;
  const maxPageSize = options.maxPageSize ?? 3;
  const files = new Map<string, FakeFile>();
  const sessions = new Map<string, Session>();
  const pages = new Map<string, string[]>();
  const faults: InjectedFault[] = [];
  let interrupt: { afterBytes: number; nth: number } | undefined;
  let clock = 0;
  let lag = 0;
  /** File id → how many more files.list queries leave it out. */
  const hidden = new Map<string, number>();
  const stats: FakeDriveStats = { ops: new Map(), chunkBytes: 0, multipartBytes: 0, maxChunksInFlight: 0 };
  const inFlight = new Map<string, number>();
  let apiRoot = '';

  const now = (): number => (clock = Math.max(Date.now(), clock + 1));
  const newId = (): string => randomBytes(12).toString('base64url');
  const count = (op: string): void => void stats.ops.set(op, (stats.ops.get(op) ?? 0) + 1);

  function addFile(meta: { name: string; mimeType: string; parents: string[]; appProperties?: Record<string, string> }, content: Buffer): FakeFile {
    for (const p of meta.parents) {
      const parent = files.get(p);
      if (parent === undefined || parent.mimeType !== FOLDER_MIME) throw new HttpError(404, 'notFound', `File not found: ${p}.`);
    }
    const t = now();
    const f: FakeFile = { id: newId(), name: meta.name, mimeType: meta.mimeType, parents: [...meta.parents], appProperties: { ...meta.appProperties }, content, createdTime: t, modifiedTime: t };
    files.set(f.id, f);
    if (lag > 0) hidden.set(f.id, lag);
    return f;
  }

  function resource(f: FakeFile): Record<string, unknown> {
    const folder = f.mimeType === FOLDER_MIME;
    return {
      kind: 'drive#file',
      id: f.id,
      name: f.name,
      mimeType: f.mimeType,
      parents: f.parents,
      trashed: false,
      createdTime: iso(f.createdTime),
      modifiedTime: iso(f.modifiedTime),
      ...(Object.keys(f.appProperties).length > 0 ? { appProperties: f.appProperties } : {}),
      ...(folder ? {} : { size: String(f.content.length), md5Checksum: createHash('md5').update(f.content).digest('hex') }),
      capabilities: { canAddChildren: folder, canEdit: true },
    };
  }

  function fileOr404(id: string): FakeFile {
    const f = files.get(id);
    if (f === undefined) throw new HttpError(404, 'notFound', `File not found: ${id}.`);
    return f;
  }

  function applyMetadata(f: FakeFile, meta: Record<string, unknown>): void {
    if (typeof meta.name === 'string') f.name = meta.name;
    const props = meta.appProperties;
    if (props !== undefined && props !== null && typeof props === 'object') {
      for (const [k, v] of Object.entries(props as Record<string, unknown>)) {
        if (v === null) delete f.appProperties[k];
        else f.appProperties[k] = typeof v === 'string' ? v : JSON.stringify(v);
      }
    }
    f.modifiedTime = now();
  }

  function createFrom(meta: Record<string, unknown>, content: Buffer, fallbackMime: string): FakeFile {
    const parents = Array.isArray(meta.parents) ? meta.parents.map(String) : [];
    if (parents.length === 0) throw new HttpError(400, 'invalidParameter', 'the fake needs an explicit parent for every file');
    const props: Record<string, string> = {};
    for (const [k, v] of Object.entries((meta.appProperties as Record<string, unknown> | undefined) ?? {})) if (v !== null) props[k] = typeof v === 'string' ? v : JSON.stringify(v);
    return addFile({ name: typeof meta.name === 'string' ? meta.name : 'Untitled', mimeType: typeof meta.mimeType === 'string' ? meta.mimeType : fallbackMime, parents, appProperties: props }, content);
  }

  function deleteTree(id: string): void {
    files.delete(id);
    for (const f of [...files.values()]) if (f.parents.includes(id)) deleteTree(f.id);
  }

  function fileSelection(fields: string | null): Selection {
    return fields === null || fields === '' ? DEFAULT_FILE_FIELDS : parseFields(fields);
  }

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': String(data.length), ...headers });
    res.end(data);
  }

  function sendError(res: ServerResponse, status: number, reason: string, message: string): void {
    if (res.headersSent) return void res.destroy();
    sendJson(res, status, { error: { code: status, message, errors: [{ domain: 'global', reason, message }] } });
  }

  function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let ended = false;
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        ended = true;
        resolve(Buffer.concat(chunks));
      });
      // Aborted before the end: nothing of it counts (Drive stores no partial request).
      req.on('close', () => {
        if (!ended) resolve(undefined);
      });
    });
  }

  function takeFault(op: string): InjectedFault | undefined {
    const i = faults.findIndex((f) => f.op === undefined || f.op === op);
    if (i < 0) return undefined;
    const f = faults[i]!;
    f.count = (f.count ?? 1) - 1;
    if (f.count <= 0) faults.splice(i, 1);
    return f;
  }

  function opOf(method: string, path: string, query: URLSearchParams): string {
    if (path.startsWith('/upload/')) {
      if (query.has('upload_id')) return method === 'DELETE' ? 'upload.cancel' : 'upload.chunk';
      return query.get('uploadType') === 'resumable' ? 'upload.start' : 'upload.multipart';
    }
    if (method === 'GET') return path === '/drive/v3/files' ? 'files.list' : query.get('alt') === 'media' ? 'files.media' : 'files.get';
    if (method === 'POST') return 'files.create';
    if (method === 'PATCH') return 'files.update';
    if (method === 'DELETE') return 'files.delete';
    return 'unknown';
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', apiRoot);
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+/g, '/');
    const q = url.searchParams;
    let op = opOf(method, path, q);
    if (op === 'upload.chunk' && req.headers['content-length'] === '0' && /^bytes \*\//.test(String(req.headers['content-range'] ?? ''))) op = 'upload.status';
    count(op);
    if (req.headers.authorization !== `Bearer ${token}`) {
      req.resume();
      return sendError(res, 401, 'authError', 'Request had invalid authentication credentials.');
    }
    const fault = takeFault(op);
    if (fault !== undefined) {
      req.resume();
      return sendError(res, fault.status, fault.reason ?? 'backendError', `injected fault (${op})`);
    }

    if (op === 'upload.chunk' || op === 'upload.status') return chunk(req, res, q.get('upload_id') ?? '');
    if (op === 'upload.cancel') {
      req.resume();
      const id = q.get('upload_id') ?? '';
      if (!sessions.delete(id)) return sendError(res, 404, 'notFound', 'No such upload session.');
      res.writeHead(499).end();
      return;
    }

    const body = await readBody(req);
    if (body === undefined) return;
    const fileMatch = /^\/(?:upload\/)?drive\/v3\/files\/([^/]+)$/.exec(path);
    const fileId = fileMatch === null ? undefined : decodeURIComponent(fileMatch[1]!);

    switch (op) {
      case 'files.list': {
        let ids: string[];
        let offset = 0;
        const pageToken = q.get('pageToken');
        if (pageToken !== null) {
          const [key, off] = pageToken.split(':');
          const saved = pages.get(key ?? '');
          if (saved === undefined) throw new HttpError(400, 'invalidParameter', 'Invalid Value: pageToken');
          ids = saved;
          offset = Number(off);
        } else {
          const query = q.get('q');
          const parsed = query === null || query.trim() === '' ? undefined : parseQuery(query);
          ids = [...files.values()]
            .filter((f) => !hidden.has(f.id) && (parsed === undefined || matches(parsed, f)))
            .sort((a, b) => b.createdTime - a.createdTime)
            .map((f) => f.id);
          // This query was one of the lagging files' n.
          for (const [id, left] of hidden) {
            if (left <= 1) hidden.delete(id);
            else hidden.set(id, left - 1);
          }
        }
        const size = Math.min(Math.max(1, Number(q.get('pageSize') ?? 100) || 100), 1000, maxPageSize);
        const page = ids.slice(offset, offset + size);
        let nextPageToken: string | undefined;
        if (offset + size < ids.length) {
          const key = newId();
          pages.set(key, ids);
          nextPageToken = `${key}:${offset + size}`;
        }
        const out = {
          kind: 'drive#fileList',
          incompleteSearch: false,
          ...(nextPageToken !== undefined ? { nextPageToken } : {}),
          files: page.flatMap((id) => {
            const f = files.get(id);
            return f === undefined ? [] : [resource(f)];
          }),
        };
        const fields = q.get('fields');
        return sendJson(res, 200, select(out, fields === null || fields === '' ? DEFAULT_LIST_FIELDS : parseFields(fields)));
      }
      case 'files.get':
        return sendJson(res, 200, select(resource(fileOr404(fileId ?? '')), fileSelection(q.get('fields'))));
      case 'files.media': {
        const f = fileOr404(fileId ?? '');
        if (f.mimeType === FOLDER_MIME) throw new HttpError(403, 'fileNotDownloadable', 'Only files with binary content can be downloaded.');
        const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
        if (range === null) {
          res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(f.content.length) });
          res.end(f.content);
          return;
        }
        const start = Number(range[1]);
        const end = Math.min(range[2] === '' ? f.content.length - 1 : Number(range[2]), f.content.length - 1);
        if (start >= f.content.length) {
          res.writeHead(416, { 'Content-Range': `bytes */${f.content.length}` }).end();
          return;
        }
        res.writeHead(206, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start + 1), 'Content-Range': `bytes ${start}-${end}/${f.content.length}` });
        res.end(f.content.subarray(start, end + 1));
        return;
      }
      case 'files.create': {
        const meta = parseJson(body);
        const f = createFrom(meta, Buffer.alloc(0), 'application/octet-stream');
        return sendJson(res, 200, select(resource(f), fileSelection(q.get('fields'))));
      }
      case 'files.update': {
        const f = fileOr404(fileId ?? '');
        applyMetadata(f, parseJson(body));
        return sendJson(res, 200, select(resource(f), fileSelection(q.get('fields'))));
      }
      case 'files.delete':
        fileOr404(fileId ?? '');
        deleteTree(fileId ?? '');
        res.writeHead(204).end();
        return;
      case 'upload.multipart': {
        if (q.get('uploadType') !== 'multipart') throw new HttpError(400, 'badRequest', `uploadType=${q.get('uploadType') ?? ''} is not implemented by the fake`);
        stats.multipartBytes += body.length;
        const { metadata, media, mediaType } = parseMultipart(String(req.headers['content-type'] ?? ''), body);
        let f: FakeFile;
        if (method === 'POST' && fileId === undefined) {
          f = createFrom(metadata, media, mediaType);
        } else if (method === 'PATCH' && fileId !== undefined) {
          f = fileOr404(fileId);
          applyMetadata(f, metadata);
          f.content = media;
        } else {
          throw new HttpError(400, 'badRequest', 'unsupported multipart request');
        }
        return sendJson(res, 200, select(resource(f), fileSelection(q.get('fields'))));
      }
      case 'upload.start': {
        if (fileId !== undefined) fileOr404(fileId);
        if (!((method === 'POST' && fileId === undefined) || (method === 'PATCH' && fileId !== undefined))) throw new HttpError(400, 'badRequest', 'unsupported resumable request');
        const lengthHeader = req.headers['x-upload-content-length'];
        const total = lengthHeader === undefined ? undefined : Number(lengthHeader);
        if (total !== undefined && (!Number.isSafeInteger(total) || total < 0)) throw new HttpError(400, 'badRequest', 'Invalid X-Upload-Content-Length');
        const id = newId();
        sessions.set(id, {
          id,
          ...(fileId !== undefined ? { fileId } : {}),
          metadata: body.length === 0 ? {} : parseJson(body),
          total,
          mimeType: String(req.headers['x-upload-content-type'] ?? 'application/octet-stream'),
          fields: q.get('fields') ?? undefined,
          chunks: [],
          received: 0,
        });
        const location = new URL(path.replace(/^\//, ''), apiRoot);
        location.searchParams.set('uploadType', 'resumable');
        location.searchParams.set('upload_id', id);
        res.writeHead(200, { Location: location.href, 'Content-Length': '0' }).end();
        return;
      }
      default:
        throw new HttpError(404, 'notFound', `${method} ${path} is not implemented by the fake`);
    }
  }

  function finish(s: Session): FakeFile {
    const content = Buffer.concat(s.chunks);
    s.chunks = [content];
    let f: FakeFile;
    if (s.fileId !== undefined) {
      f = fileOr404(s.fileId);
      applyMetadata(f, s.metadata);
      f.content = content;
    } else {
      f = createFrom(s.metadata, content, s.mimeType);
    }
    s.doneFileId = f.id;
    return f;
  }

  function sessionAnswer(res: ServerResponse, s: Session): void {
    if (s.doneFileId !== undefined) {
      const f = fileOr404(s.doneFileId);
      return sendJson(res, 200, select(resource(f), fileSelection(s.fields ?? null)));
    }
    res.writeHead(308, 'Resume Incomplete', { 'Content-Length': '0', ...(s.received > 0 ? { Range: `bytes=0-${s.received - 1}` } : {}) }).end();
  }

  /** A PUT to a session URI: a status query (`bytes *\/N`, no body) or a chunk. */
  function chunk(req: IncomingMessage, res: ServerResponse, uploadId: string): void {
    const s = sessions.get(uploadId);
    if (s === undefined) {
      req.resume();
      return sendError(res, 404, 'notFound', 'No such upload session.');
    }
    const contentRange = String(req.headers['content-range'] ?? '');
    const length = Number(req.headers['content-length'] ?? NaN);
    const status = /^bytes \*\/(\d+|\*)$/.exec(contentRange);
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
    const fail = (reason: string, message: string): void => {
      req.resume();
      sendError(res, 400, reason, message);
    };
    if (status !== null) {
      req.resume();
      const total = status[1] === '*' ? undefined : Number(status[1]);
      if (total !== undefined && s.total !== undefined && total !== s.total) return fail('badRequest', `Content-Range total ${total} differs from X-Upload-Content-Length ${s.total}`);
      // "bytes */0" on an empty upload is its only (and last) chunk.
      if (total === 0 && s.doneFileId === undefined && s.received === 0) finish(s);
      return sessionAnswer(res, s);
    }
    if (m === null) return fail('badRequest', `Invalid Content-Range "${contentRange}"`);
    if (s.doneFileId !== undefined) {
      req.resume();
      return sessionAnswer(res, s);
    }
    const start = Number(m[1]);
    const end = Number(m[2]);
    const total = m[3] === '*' ? s.total : Number(m[3]);
    if (total !== undefined && s.total !== undefined && total !== s.total) return fail('badRequest', `Content-Range total ${total} differs from X-Upload-Content-Length ${s.total}`);
    if (end < start || length !== end - start + 1) return fail('badRequest', `Content-Range ${contentRange} does not match Content-Length ${length}`);
    if (total !== undefined && end >= total) return fail('badRequest', `Content-Range ${contentRange} goes past the end of the upload`);
    if (start !== s.received) return fail('badRequest', `Invalid request. The upload offset is ${start} byte(s); the session holds ${s.received} byte(s).`);
    const last = total !== undefined && end + 1 === total;
    if (!last && length % UNIT !== 0) {
      return fail('badRequest', `Invalid request. The number of bytes uploaded is required to be a multiple of ${UNIT} bytes, except for the last request (got ${length}).`);
    }
    const active = (inFlight.get(s.id) ?? 0) + 1;
    inFlight.set(s.id, active);
    stats.maxChunksInFlight = Math.max(stats.maxChunksInFlight, active);
    req.once('close', () => inFlight.set(s.id, (inFlight.get(s.id) ?? 1) - 1));
    let cut: number | undefined;
    if (interrupt !== undefined && --interrupt.nth <= 0) {
      cut = interrupt.afterBytes;
      interrupt = undefined;
    }
    const parts: Buffer[] = [];
    let arrived = 0;
    let ended = false;
    const keepWholeUnits = (): void => {
      // What Drive keeps of an interrupted chunk: the bytes that arrived, in whole 256 KiB units.
      const keep = Math.floor(arrived / UNIT) * UNIT;
      if (keep > 0) {
        s.chunks.push(Buffer.concat(parts).subarray(0, keep));
        s.received += keep;
      }
    };
    req.on('data', (c: Buffer) => {
      if (ended) return;
      if (cut !== undefined && arrived + c.length >= cut) {
        const part = c.subarray(0, cut - arrived);
        parts.push(part);
        arrived += part.length;
        stats.chunkBytes += part.length;
        ended = true;
        keepWholeUnits();
        req.socket.destroy();
        return;
      }
      parts.push(c);
      arrived += c.length;
      stats.chunkBytes += c.length;
    });
    req.on('end', () => {
      if (ended) return;
      ended = true;
      s.chunks.push(Buffer.concat(parts));
      s.received += arrived;
      if (last) {
        try {
          finish(s);
        } catch (e) {
          const err = e instanceof HttpError ? e : new HttpError(500, 'backendError', String(e));
          return sendError(res, err.status, err.reason, err.message);
        }
      }
      sessionAnswer(res, s);
    });
    req.on('close', () => {
      if (ended) return;
      ended = true;
      keepWholeUnits();
    });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof HttpError ? e : new HttpError(500, 'backendError', e instanceof Error ? e.message : String(e));
      req.resume();
      sendError(res, err.status, err.reason, err.message);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  apiRoot = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  return {
    apiRoot,
    token,
    stats,
    resetStats(): void {
      stats.ops.clear();
      stats.chunkBytes = 0;
      stats.multipartBytes = 0;
      stats.maxChunksInFlight = 0;
    },
    createFolder(name: string, parent?: string): string {
      if (parent === undefined) {
        // A top-level folder: its own parent is the (unmodelled) My Drive root.
        const t = now();
        const f: FakeFile = { id: newId(), name, mimeType: FOLDER_MIME, parents: [], appProperties: {}, content: Buffer.alloc(0), createdTime: t, modifiedTime: t };
        files.set(f.id, f);
        return f.id;
      }
      return addFile({ name, mimeType: FOLDER_MIME, parents: [parent] }, Buffer.alloc(0)).id;
    },
    createFile(parent: string, name: string, content: Buffer, appProperties?: Record<string, string>): string {
      return addFile({ name, mimeType: 'application/octet-stream', parents: [parent], ...(appProperties !== undefined ? { appProperties } : {}) }, content).id;
    },
    all: () => [...files.values()],
    filesUnder(folderId: string): { path: string; file: FakeFile }[] {
      const out: { path: string; file: FakeFile }[] = [];
      const walk = (id: string, base: string): void => {
        for (const f of files.values()) {
          if (!f.parents.includes(id)) continue;
          if (f.mimeType === FOLDER_MIME) walk(f.id, `${base}${f.name}/`);
          else out.push({ path: base + f.name, file: f });
        }
      };
      walk(folderId, '');
      return out;
    },
    interruptChunk(afterBytes: number, nth = 1): void {
      interrupt = { afterBytes, nth };
    },
    failNext(fault: InjectedFault): void {
      faults.push({ ...fault });
    },
    listLag(queries: number): void {
      lag = Math.max(0, Math.floor(queries));
    },
    reveal(): void {
      hidden.clear();
    },
    dropSessions(uploadId?: string): void {
      if (uploadId === undefined) sessions.clear();
      else sessions.delete(uploadId);
    },
    sessions: () => [...sessions.values()].map((s) => ({ id: s.id, received: s.received, total: s.total, done: s.doneFileId !== undefined })),
    async stop(): Promise<void> {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closing;
    },
  };
}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'parseError', 'Parse Error');
  }
}

/** multipart/related: a JSON metadata part, then the media part. */
function parseMultipart(contentType: string, body: Buffer): { metadata: Record<string, unknown>; media: Buffer; mediaType: string } {
  const m = /^multipart\/related;\s*boundary="?([^";]+)"?/i.exec(contentType);
  if (m === null) throw new HttpError(400, 'badContent', 'Multipart upload needs Content-Type multipart/related with a boundary');
  const delimiter = Buffer.from(`--${m[1]}`);
  const closing = Buffer.from(`\r\n--${m[1]}--`);
  const end = body.lastIndexOf(closing);
  if (body.indexOf(delimiter) !== 0 || end < 0) throw new HttpError(400, 'badContent', 'Malformed multipart body');
  const parts: { headers: string; content: Buffer }[] = [];
  let pos = delimiter.length;
  while (pos < end) {
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw new HttpError(400, 'badContent', 'Malformed multipart part');
    const headers = body.subarray(pos, headerEnd).toString('utf8');
    const contentStart = headerEnd + 4;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), contentStart);
    const contentEnd = next < 0 || next >= end ? end : next;
    parts.push({ headers, content: body.subarray(contentStart, contentEnd) });
    pos = contentEnd + 2 + delimiter.length;
  }
  if (parts.length !== 2) throw new HttpError(400, 'badContent', `Multipart upload needs 2 parts, got ${parts.length}`);
  const mediaType = /content-type:\s*([^\r\n]+)/i.exec(parts[1]!.headers)?.[1] ?? 'application/octet-stream';
  return { metadata: parseJson(parts[0]!.content), media: Buffer.from(parts[1]!.content), mediaType };
}

// Standalone: a fake Drive to point the CLI at (HOLDFAST_GDRIVE_API_ROOT, HOLDFAST_GDRIVE_ACCESS_TOKEN).
if (process.argv[1] !== undefined && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = process.argv[2] === undefined ? 0 : Number(process.argv[2]);
  const drive = await startFakeDrive({ port, token: process.env.HOLDFAST_GDRIVE_ACCESS_TOKEN ?? 'fake-drive-token', maxPageSize: 100 });
  const folder = drive.createFolder('holdfast');
  process.stdout.write(`fake Drive (not Google) at ${drive.apiRoot}\nexport HOLDFAST_GDRIVE_API_ROOT=${drive.apiRoot}\nexport HOLDFAST_GDRIVE_ACCESS_TOKEN=${drive.token}\nfolder: gdrive://${folder}\n`);
  const stop = (): void => void drive.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
