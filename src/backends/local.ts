// The file:// destination: every object is a regular file under a root
// directory, its key the "/"-separated path below the root.
//
// Durability: a put writes a temporary file in the target directory, fsyncs it,
// renames it over the final name and fsyncs the directory, so after a crash the
// key holds either the old content or the new one, never a torn file. There is
// no metadata store: the object's content is its identity, so `head` hashes it.
//
// Names: on a case-insensitive or Unicode-normalising file system (APFS, exFAT,
// vfat, SMB mounts) "Readme" and "README" are one file. `ensureReady` probes
// the directory for that and then declares `keyFolding`, so the planner refuses
// source keys that would share a name; and every operation checks that the
// names already on disk are spelled as the key spells them, so a put never
// writes over another key's file and a delete never removes it (see NameGuard).

import { createHash, randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import { access, lstat, mkdir, open, opendir, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cancelledError, classifyError, HoldfastError, isHoldfastError, throwIfAborted } from '../core/errors.js';
import type {
  Backend,
  BackendFactory,
  BackendOptions,
  BodySource,
  Capabilities,
  GetOptions,
  ListOptions,
  ObjectInfo,
  OpOptions,
  PutOptions,
  PutResult,
} from './backend.js';
import { keyFoldingFor, keyInvalidError, printable, validateKeyCommon } from './keys.js';
import type { KeyFolding } from './keys.js';
import type { DestinationLocation } from './location.js';

/**
 * Temporary files of in-flight puts, and the probe files of `ensureReady`
 * (".holdfast.<hex>.probe-é.tmp", é composed or decomposed, and ".holdfast.<hex>.probe-?.tmp"). `list()` never
 * returns them and no key may take this form.
 */
const TEMP_NAME = /^\.holdfast\.[0-9a-f]{16}(?:\.probe-(?:\u00e9|e\u0301|\?))?\.tmp$/;
/** Characters Windows file systems (exFAT, FAT, NTFS, SMB shares) refuse in names. */
// eslint-disable-next-line no-control-regex
const WINDOWS_FORBIDDEN = /[\\:*?"<>|\u0000-\u001f]/;
/** Longest file name on the filesystems Holdfast targets (ext4, XFS, APFS, NTFS: 255). */
const NAME_MAX_BYTES = 255;
/** Linux PATH_MAX, including the terminating NUL. */
const PATH_MAX_BYTES = 4096;
/** How many files of one directory `list()` stats at once. */
const STAT_BATCH = 64;
const SLASH = Buffer.from('/');
const EMPTY = Buffer.alloc(0);

export const createBackend: BackendFactory = async (url: URL, options: BackendOptions): Promise<Backend> => {
  return new LocalBackend(rootFromUrl(url), options);
};

function rootFromUrl(url: URL): string {
  const shown = url.href;
  if (url.search !== '' || url.hash !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'a file:// URL takes no "?" or "#" part (write them as %3F and %23 in a directory name)' });
  }
  // WHATWG parsing already turned "localhost" into no host; any other host is another machine.
  if (url.host !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: `"${url.host}" is not this machine: a file:// URL names a local directory, file:///absolute/path (mount a network share first)` });
  }
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch (e) {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: `${(e as Error).message}; expected file:///absolute/path` }, { cause: e });
  }
  // A NUL cannot be in a path (the file system would stop reading the name there).
  if (path.includes('\0')) throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'the path contains a NUL character (%00), which no file name can hold' });
  return resolve(path);
}

function errCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * Coalesces directory fsyncs: many puts finishing in the same directory share
 * one fsync instead of paying one each. A caller is only served by an fsync
 * that *starts* after it asked (its rename must be covered), so while one runs,
 * later callers share a single queued follow-up.
 */
class DirSyncer {
  private readonly states = new Map<string, { running?: Promise<void>; queued?: Promise<void> }>();
  /** fsync calls actually made (tests check coalescing). */
  calls = 0;

  sync(dir: string): Promise<void> {
    let state = this.states.get(dir);
    if (state === undefined) {
      state = {};
      this.states.set(dir, state);
    }
    if (state.queued !== undefined) return state.queued;
    if (state.running !== undefined) {
      const s = state;
      const queued = state.running
        .catch(() => undefined)
        .then(() => {
          s.queued = undefined;
          return this.start(dir, s);
        });
      s.queued = queued;
      return queued;
    }
    return this.start(dir, state);
  }

  private start(dir: string, state: { running?: Promise<void>; queued?: Promise<void> }): Promise<void> {
    this.calls++;
    const running: Promise<void> = fsyncDir(dir).finally(() => {
      if (state.running === running) state.running = undefined;
      if (state.running === undefined && state.queued === undefined && this.states.get(dir) === state) this.states.delete(dir);
    });
    state.running = running;
    return running;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; NTFS journals the rename itself.
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems (FUSE, some network mounts) do not implement directory fsync.
    if (errCode(e) !== 'EINVAL' && errCode(e) !== 'ENOTSUP') throw e;
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

interface ListItem {
  readonly key: Buffer;
  readonly path: string;
  readonly dir: boolean;
}

/** Whether something answers to `path` (a folding file system finds any spelling of the name). */
async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw e;
  }
}

/** How the destination's file system treats names, as `ensureReady` found by probing it. */
export interface NameRules {
  /** "Readme" and "README" are one file (APFS and HFS+ by default, exFAT, vfat, NTFS, SMB shares). */
  readonly caseInsensitive: boolean;
  /** "é" composed (NFC) and decomposed (NFD) are one file (APFS, HFS+). */
  readonly unicodeInsensitive: boolean;
  /** Names may not contain \\ : * ? " < > | or control characters (exFAT, FAT, NTFS, SMB shares). */
  readonly windowsNames: boolean;
  /**
   * How a name comes back from a listing: as it was given (case and normalisation
   * preserved: APFS, exFAT, NTFS), in NFD (HFS+), or 'unknown' (then names on
   * disk cannot be compared with keys, and only the planner's check applies).
   */
  readonly stores: 'as-given' | 'NFD' | 'unknown';
}

/**
 * On a folding file system, keeps keys apart that the file system would not:
 * a key names an object only if every part of its path that exists on disk is
 * spelled there as the key spells it. "docs/Readme" with "docs/README" on disk
 * is a different key's file, so a put refuses to write over it
 * (HOLDFAST_E_KEY_COLLISION), `head` and `get` do not see it, and `delete`
 * leaves it. This is what keeps a source renamed only in case (README →
 * Readme, then `sync`) from overwriting README's file and deleting it as
 * README afterwards.
 *
 * Each directory is read once, when an operation first needs its spellings,
 * and kept up to date with this backend's own writes and deletes; a spelling
 * that disagrees, or a name not in the cache, is read again before it counts.
 */
class NameGuard {
  /** Directory path → folded name → the name on disk. */
  private readonly dirs = new Map<string, Map<string, string>>();
  private readonly reading = new Map<string, Promise<Map<string, string>>>();

  constructor(
    private readonly folding: KeyFolding,
    private readonly stores: 'as-given' | 'NFD',
  ) {}

  /** The name the file system shows for a name created as `name`. */
  private stored(name: string): string {
    return this.stores === 'as-given' ? name : name.normalize(this.stores);
  }

  /**
   * The first part of `key` (below `root`) that exists on disk under another
   * spelling, as a key or folder ("Docs/", "docs/README"); undefined when all
   * that exists is spelled as the key spells it.
   */
  async misspelled(root: string, key: string): Promise<string | undefined> {
    const segments = key.split('/');
    let dir = root;
    let shown = '';
    for (let i = 0; i < segments.length; i++) {
      const name = segments[i]!;
      const path = join(dir, name);
      // Nothing answers to this name in any spelling: neither it nor anything below it exists.
      if (!(await exists(path))) return undefined;
      const disk = await this.onDisk(dir, name);
      const last = i === segments.length - 1;
      if (disk !== undefined && disk !== this.stored(name)) return `${shown}${disk}${last ? '' : '/'}`;
      shown += `${name}/`;
      dir = path;
    }
    return undefined;
  }

  /** The spelling on disk of the entry `name` finds in `dir`; a cached answer that disagrees is checked again. */
  private async onDisk(dir: string, name: string): Promise<string | undefined> {
    const folded = this.folding.fold(name);
    const cached = this.dirs.get(dir)?.get(folded);
    if (cached === this.stored(name)) return cached;
    return (await this.read(dir)).get(folded);
  }

  private read(dir: string): Promise<Map<string, string>> {
    let p = this.reading.get(dir);
    if (p === undefined) {
      p = readdir(dir)
        .then((names) => {
          const m = new Map<string, string>();
          for (const n of names) m.set(this.folding.fold(n), n);
          this.dirs.set(dir, m);
          return m;
        })
        .finally(() => this.reading.delete(dir));
      this.reading.set(dir, p);
    }
    return p;
  }

  /** A put made `key` exist under `root` as the key spells it (folders included). */
  written(root: string, key: string): void {
    let dir = root;
    for (const name of key.split('/')) {
      this.dirs.get(dir)?.set(this.folding.fold(name), this.stored(name));
      dir = join(dir, name);
    }
  }

  /** `name` is gone from `dir` (a delete, or a folder pruned). */
  removed(dir: string, name: string): void {
    this.dirs.get(dir)?.delete(this.folding.fold(name));
    this.dirs.delete(join(dir, name));
  }
}

export class LocalBackend implements Backend {
  readonly kind = 'file';
  readonly url: string;
  readonly location: DestinationLocation;
  readonly capabilities: Capabilities;
  /** Absolute root directory, no trailing separator (except for "/"). */
  readonly root: string;
  private readonly rootPrefix: string;
  private readonly fsync: boolean;
  /** Exposed for tests (fsync coalescing). */
  readonly dirSync = new DirSyncer();
  /** What `ensureReady` found out about names on this file system; undefined before, or when it could not tell. */
  nameRules: NameRules | undefined;
  /** Set by `ensureReady` when the file system folds names (Backend.keyFolding). */
  keyFolding: KeyFolding | undefined;
  private guard: NameGuard | undefined;

  constructor(root: string, options: BackendOptions = {}) {
    this.root = root;
    this.rootPrefix = root.endsWith(sep) ? root : root + sep;
    this.fsync = options.fsync ?? true;
    this.url = pathToFileURL(root).href;
    this.location = { namespace: 'file://', prefix: root.endsWith('/') ? root : `${root}/` };
    this.capabilities = {
      multipart: false,
      metadata: false,
      serverChecksum: false,
      versioning: false,
      // The whole path must fit in PATH_MAX, so the root's length is the "prefix" here.
      maxKeyBytes: Math.max(1, PATH_MAX_BYTES - 1 - Buffer.byteLength(this.rootPrefix, 'utf8')),
      maxObjectSize: Number.MAX_SAFE_INTEGER,
      minPartSize: 0,
      maxPartSize: 0,
      maxParts: 0,
      sequentialParts: false,
    };
  }

  validateKey(key: string): void {
    validateKeyCommon(key, { maxKeyBytes: this.capabilities.maxKeyBytes });
    for (const segment of key.split('/')) {
      const bytes = Buffer.byteLength(segment, 'utf8');
      if (bytes > NAME_MAX_BYTES) throw keyInvalidError(key, `a path segment is ${bytes} bytes; file names are limited to ${NAME_MAX_BYTES}`);
      if (TEMP_NAME.test(segment)) throw keyInvalidError(key, 'names of the form .holdfast.<hex>[.probe-é].tmp are reserved for temporary files');
    }
    if ((process.platform === 'win32' || this.nameRules?.windowsNames === true) && WINDOWS_FORBIDDEN.test(key)) {
      throw keyInvalidError(key, `${this.url} is on a file system with Windows' rules for names (NTFS, exFAT, FAT, SMB): none of \\ : * ? " < > | or control characters`);
    }
  }

  /** Absolute path of `key`, guaranteed to be inside the root. */
  private pathOf(key: string): string {
    this.validateKey(key);
    const path = resolve(this.root, ...key.split('/'));
    // Validation already forbids ".." and absolute keys; this is the belt to those braces.
    if (!path.startsWith(this.rootPrefix)) throw keyInvalidError(key, 'the key resolves outside the destination directory');
    return path;
  }

  async ensureReady(opts: OpOptions & { readonly readOnly?: boolean; readonly forReading?: boolean } = {}): Promise<void> {
    const rootExists = await this.readyRoot(opts);
    // A restore only reads whole keys back; writers need to know how names fold here.
    if (!rootExists || opts.forReading === true || this.nameRules !== undefined) return;
    const rules = opts.readOnly === true ? await this.probeNamesReadOnly() : await this.probeNames(opts.signal);
    if (rules === undefined) return;
    this.nameRules = rules;
    this.keyFolding = keyFoldingFor(rules);
    this.guard = this.keyFolding !== undefined && rules.stores !== 'unknown' ? new NameGuard(this.keyFolding, rules.stores) : undefined;
  }

  /** The checks of `ensureReady` on the root itself; true when the root exists afterwards. */
  private async readyRoot(opts: OpOptions & { readonly readOnly?: boolean; readonly forReading?: boolean }): Promise<boolean> {
    throwIfAborted(opts.signal);
    let st: Stats;
    try {
      st = await stat(this.root);
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT' && opts.forReading === true) {
        throw new HoldfastError('HOLDFAST_E_DEST_NOT_FOUND', { detail: `destination directory "${this.root}" does not exist: there is nothing to read` }, { cause: e });
      }
      if (code === 'ENOENT') {
        if (opts.readOnly === true) return false;
        await this.createRoot();
        return true;
      }
      if (code === 'ENOTDIR') throw await this.cannotCreate(e);
      if (code === 'EACCES' || code === 'EPERM') {
        throw new HoldfastError('HOLDFAST_E_AUTH', { detail: `cannot access "${this.root}" (${code})` }, { cause: e });
      }
      throw classifyError(e, 'HOLDFAST_E_DEST_UNREACHABLE', { detail: `cannot reach "${this.root}"` });
    }
    if (!st.isDirectory()) {
      throw new HoldfastError('HOLDFAST_E_DEST_NOT_FOUND', { detail: `destination "${this.root}" exists but is not a directory` });
    }
    // A restore reads only: a read-only backup (snapshot, mounted medium) is fine for it.
    const [mode, verb] = opts.forReading === true ? [fsConstants.R_OK | fsConstants.X_OK, 'read'] : [fsConstants.W_OK | fsConstants.X_OK, 'write to'];
    try {
      await access(this.root, mode);
    } catch (e) {
      throw new HoldfastError('HOLDFAST_E_AUTH', { detail: `no permission to ${verb} "${this.root}" (${errCode(e)})` }, { cause: e });
    }
    return true;
  }

  /**
   * Finds out how this file system treats names: creates an empty probe file
   * ".holdfast.<hex>.probe-é.tmp" (é composed) in the root, looks it up
   * with its ASCII letters in upper case and with é decomposed, and removes it.
   * Where either finds it, the directory is read once to see how the name was
   * stored (as given, or decomposed as HFS+ does). Then tries a name with "?",
   * which Windows' file systems refuse (and Node's recursive mkdir loops
   * forever on, when exFAT answers ENOENT for it: such keys must be refused
   * before any write).
   */
  private async probeNames(signal?: AbortSignal): Promise<NameRules> {
    const hex = randomBytes(8).toString('hex');
    const name = `.holdfast.${hex}.probe-\u00e9.tmp`;
    const path = join(this.root, name);
    try {
      await (await open(path, 'wx', 0o600)).close();
    } catch (e) {
      throw this.classify(e, name, signal);
    }
    try {
      const caseInsensitive = await exists(join(this.root, name.replace(/[a-z]/g, (c) => c.toUpperCase())));
      const unicodeInsensitive = await exists(join(this.root, name.normalize('NFD')));
      let stores: NameRules['stores'] = 'as-given';
      if (caseInsensitive || unicodeInsensitive) {
        stores = 'unknown';
        const dir = await opendir(this.root);
        for await (const ent of dir) {
          if (!ent.name.toLowerCase().startsWith(`.holdfast.${hex}.`)) continue;
          stores = ent.name === name ? 'as-given' : ent.name === name.normalize('NFD') ? 'NFD' : 'unknown';
          break;
        }
      }
      // Refused names fail with EINVAL (vfat, NTFS) or ENOENT (exFAT through FUSE).
      const windowsNames = await this.refusesName(`.holdfast.${hex}.probe-?.tmp`);
      return { caseInsensitive, unicodeInsensitive, windowsNames, stores };
    } catch (e) {
      throw this.classify(e, name, signal);
    } finally {
      await unlink(path).catch(() => undefined);
    }
  }

  /** Whether creating `name` in the root fails because of the name itself (it is removed again if not). */
  private async refusesName(name: string): Promise<boolean> {
    try {
      await (await open(join(this.root, name), 'wx', 0o600)).close();
    } catch (e) {
      const code = errCode(e);
      if (code === 'EINVAL' || code === 'ENOENT') return true;
      throw e;
    }
    await unlink(join(this.root, name));
    return false;
  }

  /**
   * The probe of a dry run, which may not write: looks up names already in the
   * root under another case or normalisation. Undefined when no name there can
   * tell (an empty root); a dry run then plans as if every key were its own name.
   */
  private async probeNamesReadOnly(): Promise<NameRules | undefined> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return undefined;
    }
    const present = new Set(names);
    const swapCase = (n: string): string => n.replace(/[A-Za-z]/g, (c) => (c >= 'a' ? c.toUpperCase() : c.toLowerCase()));
    const otherForm = (n: string): string => (n === n.normalize('NFC') ? n.normalize('NFD') : n.normalize('NFC'));
    // Both spellings listed side by side: this file system tells them apart.
    const answers = async (variant: (n: string) => string): Promise<boolean | undefined> => {
      const sample = names.find((n) => variant(n) !== n);
      if (sample === undefined) return undefined;
      if (names.some((n) => variant(n) !== n && present.has(variant(n)))) return false;
      return exists(join(this.root, variant(sample)));
    };
    const caseInsensitive = await answers(swapCase);
    const unicodeInsensitive = await answers(otherForm);
    if (caseInsensitive === undefined && unicodeInsensitive === undefined) return undefined;
    return { caseInsensitive: caseInsensitive === true, unicodeInsensitive: unicodeInsensitive === true, windowsNames: false, stores: 'as-given' };
  }

  private async createRoot(): Promise<void> {
    try {
      const first = await mkdir(this.root, { recursive: true });
      if (first !== undefined && this.fsync) await this.syncNewDirs(first, this.root, true);
    } catch (e) {
      throw await this.cannotCreate(e);
    }
  }

  /** DEST_NOT_FOUND naming the ancestor that stops `mkdir -p` of the root. */
  private async cannotCreate(e: unknown): Promise<HoldfastError> {
    let ancestor = dirname(this.root);
    let ancestorStat: Stats | undefined;
    for (;;) {
      try {
        ancestorStat = await stat(ancestor);
        break;
      } catch {
        const up = dirname(ancestor);
        if (up === ancestor) break;
        ancestor = up;
      }
    }
    const code = errCode(e);
    const why =
      ancestorStat !== undefined && !ancestorStat.isDirectory()
        ? `"${ancestor}" is not a directory`
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? `"${ancestor}" is not writable (${code})`
          : `${code || (e as Error).message}`;
    return new HoldfastError(
      'HOLDFAST_E_DEST_NOT_FOUND',
      { detail: `destination directory "${this.root}" does not exist and cannot be created: ${why}; create it (mkdir -p) or choose another path` },
      { cause: e },
    );
  }

  /**
   * After `mkdir -p` created `first`…`last`, makes those new entries durable:
   * the parent of `first` and every new directory that holds another new one
   * (and `last` itself if asked; a put syncs `last` after its rename anyway).
   */
  private async syncNewDirs(first: string, last: string, includeLast: boolean): Promise<void> {
    const dirs = [dirname(first)];
    for (let d = last; d.length >= first.length; d = dirname(d)) {
      if (d !== last || includeLast) dirs.push(d);
      if (d === first) break;
    }
    await Promise.all(dirs.map((d) => this.dirSync.sync(d)));
  }

  async put(key: string, body: BodySource, opts: PutOptions): Promise<PutResult> {
    const { signal } = opts;
    throwIfAborted(signal);
    const path = this.pathOf(key);
    const dir = dirname(path);
    const temp = join(dir, `.holdfast.${randomBytes(8).toString('hex')}.tmp`);
    let fh: FileHandle | undefined;
    let stream: Readable | undefined;
    let renamed = false;
    const onAbort = (): void => {
      stream?.destroy(cancelledError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.refuseMisspelled(key);
      fh = await this.createTemp(dir, temp, key);
      stream = body.open();
      const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
      let written = 0;
      for (;;) {
        let next: IteratorResult<Buffer | string>;
        try {
          next = await chunks.next();
        } catch (e) {
          // The body failed (source unreadable, or the caller's verifier saw it change): not our fault.
          throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path: key });
        }
        if (next.done === true) break;
        const buf = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        throwIfAborted(signal);
        await writeAll(fh, buf);
        written += buf.length;
        opts.onProgress?.(written);
      }
      if (written !== opts.size) {
        throw new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: key, detail: `expected ${opts.size} bytes, read ${written}` });
      }
      if (opts.mtimeMs !== undefined) await fh.utimes(Date.now() / 1000, opts.mtimeMs / 1000);
      if (this.fsync) await fh.sync();
      await fh.close();
      fh = undefined;
      // Last moment a cancellation can keep the object from appearing.
      throwIfAborted(signal);
      try {
        await rename(temp, path);
      } catch (e) {
        const code = errCode(e);
        if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') throw this.conflict(key, e);
        throw e;
      }
      renamed = true;
      this.guard?.written(this.root, key);
      if (this.fsync) await this.dirSync.sync(dir);
      // The content hash is this object's entity tag: what it is, not where it came from.
      return { etag: opts.sha256 };
    } catch (e) {
      stream?.destroy();
      if (fh !== undefined) await fh.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
      throw this.classify(e, key, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Creates the parent directories and opens a fresh temp file. */
  private async createTemp(dir: string, temp: string, key: string): Promise<FileHandle> {
    for (let attempt = 0; ; attempt++) {
      let first: string | undefined;
      try {
        first = await mkdir(dir, { recursive: true });
      } catch (e) {
        const code = errCode(e);
        if (code === 'ENOTDIR' || code === 'EEXIST') throw this.conflict(key, e);
        throw e;
      }
      if (first !== undefined && this.fsync) await this.syncNewDirs(first, dir, false);
      try {
        return await open(temp, 'wx', 0o666);
      } catch (e) {
        // A concurrent delete may have pruned the (then empty) directory between
        // our mkdir and open; make it again.
        if (errCode(e) === 'ENOENT' && attempt < 5) continue;
        throw e;
      }
    }
  }

  /**
   * On a folding file system: HOLDFAST_E_KEY_COLLISION if part of `key`'s path
   * exists there under another spelling, which is another key's file or folder.
   */
  private async refuseMisspelled(key: string): Promise<void> {
    const other = await this.guard?.misspelled(this.root, key);
    if (other === undefined) return;
    throw new HoldfastError('HOLDFAST_E_KEY_COLLISION', {
      key: printable(key),
      other: printable(other),
      detail:
        `${this.url} ${this.keyFolding?.description ?? 'folds names'} and already holds "${printable(other)}"; "${printable(key)}" is not written, so "${printable(other)}" is not overwritten ` +
        `(once "${printable(other)}" is deleted, as sync does when it is gone from the source, the next run sends "${printable(key)}")`,
    });
  }

  /** Whether `key` names no object because part of its path is another key's (a folding file system). */
  private async misspelled(key: string, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.guard === undefined) return false;
    try {
      return (await this.guard.misspelled(this.root, key)) !== undefined;
    } catch (e) {
      throw this.classify(e, key, signal);
    }
  }

  private conflict(key: string, e: unknown): HoldfastError {
    return new HoldfastError(
      'HOLDFAST_E_DEST_REJECTED',
      { detail: `key "${printable(key)}" collides with an existing file or folder on ${this.url} (a file cannot also be a folder)` },
      { cause: e },
    );
  }

  private classify(e: unknown, key: string, signal: AbortSignal | undefined): HoldfastError {
    if (signal?.aborted === true) return isHoldfastError(e) && e.code === 'HOLDFAST_E_CANCELLED' ? e : cancelledError(signal);
    if (isHoldfastError(e)) return e;
    const code = errCode(e);
    const detail = `${(e as Error).message ?? String(e)}`;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new HoldfastError('HOLDFAST_E_AUTH', { detail }, { cause: e });
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail }, { cause: e });
    if (code === 'ENAMETOOLONG') return keyInvalidError(key, 'the path is too long for this filesystem');
    if (code === 'EIO' || code === 'EMFILE' || code === 'ENFILE' || code === 'EAGAIN' || code === 'EBUSY') {
      return new HoldfastError('HOLDFAST_E_DEST_SERVER', { detail }, { cause: e });
    }
    return classifyError(e, 'HOLDFAST_E_DEST_SERVER');
  }

  private missing(key: string): HoldfastError {
    return new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `no object "${printable(key)}" on ${this.url}` });
  }

  async head(key: string, opts: OpOptions = {}): Promise<ObjectInfo | undefined> {
    throwIfAborted(opts.signal);
    const path = this.pathOf(key);
    if (await this.misspelled(key, opts.signal)) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw this.classify(e, key, opts.signal);
    }
    try {
      const st = await fh.stat();
      // A directory is the parent of other keys, not an object.
      if (!st.isFile()) return undefined;
      const sha256 = await hashHandle(fh, st.size, opts.signal);
      // put sets the file's mtime to the source's: the file time is the source mtime.
      return { key, size: st.size, modifiedMs: st.mtimeMs, mtimeMs: st.mtimeMs, sha256 };
    } catch (e) {
      throw this.classify(e, key, opts.signal);
    } finally {
      await fh.close();
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    throwIfAborted(opts.signal);
    const path = this.pathOf(key);
    if (await this.misspelled(key, opts.signal)) throw this.missing(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') throw this.missing(key);
      throw this.classify(e, key, opts.signal);
    }
    let handed = false;
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw this.missing(key);
      let start = 0;
      let end = st.size - 1;
      if (opts.range !== undefined) {
        const r = opts.range;
        if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start) {
          throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `invalid byte range ${r.start}-${r.end}` });
        }
        if (r.start >= st.size) {
          throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `range ${r.start}-${r.end} is not satisfiable: "${printable(key)}" is ${st.size} bytes` });
        }
        start = r.start;
        end = Math.min(r.end, st.size - 1);
      }
      if (end < start) return Readable.from([], { objectMode: false });
      const stream = fh.createReadStream({ start, end, autoClose: true, highWaterMark: 256 * 1024 });
      handed = true;
      return opts.signal === undefined ? stream : addAbortSignal(opts.signal, stream);
    } catch (e) {
      throw this.classify(e, key, opts.signal);
    } finally {
      if (!handed) await fh.close();
    }
  }

  async delete(key: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const path = this.pathOf(key);
    // What answers to this key's name there is another key's file: this key has none to delete.
    if (await this.misspelled(key, opts.signal)) return;
    try {
      await unlink(path);
    } catch (e) {
      const code = errCode(e);
      // Missing, or the key names a folder (parent of other keys): there is no object to delete.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      if (code === 'EPERM' && (await stat(path).then((s) => s.isDirectory(), () => false))) return;
      throw this.classify(e, key, opts.signal);
    }
    const dir = dirname(path);
    this.guard?.removed(dir, basename(path));
    if (this.fsync) await this.dirSync.sync(dir);
    await this.pruneEmptyDirs(dir);
  }

  /** Removes `dir` and its ancestors while they are empty, never the root. Best effort. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    for (let d = dir; d.startsWith(this.rootPrefix) && d !== this.root; d = dirname(d)) {
      try {
        await rmdir(d);
        this.guard?.removed(dirname(d), basename(d));
      } catch {
        // Not empty (another key, or a put that just created it), or already gone: stop.
        return;
      }
    }
  }

  async *list(prefix = '', opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    throwIfAborted(opts.signal);
    // Walk only the deepest directory the prefix fully names: "a/b/c" → a/b, names starting "c".
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    const dirPath = dirKey === '' ? this.root : this.pathOfDir(dirKey);
    if (dirPath === undefined) return;
    const base = slash >= 0 ? Buffer.from(prefix.slice(0, slash + 1), 'utf8') : EMPTY;
    const startAfter = opts.startAfter === undefined ? undefined : Buffer.from(opts.startAfter, 'utf8');
    yield* this.walk(dirPath, base, Buffer.from(prefix, 'utf8'), startAfter, opts.signal);
  }

  /** Directory for a prefix's folder part, or undefined if no key can live there. */
  private pathOfDir(dirKey: string): string | undefined {
    try {
      return this.pathOf(dirKey);
    } catch {
      return undefined;
    }
  }

  private async *walk(dirPath: string, base: Buffer, prefix: Buffer, startAfter: Buffer | undefined, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
    throwIfAborted(signal);
    let entries: Dirent<Buffer>[];
    try {
      entries = await readdir(dirPath, { withFileTypes: true, encoding: 'buffer' });
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw this.classify(e, '', signal);
    }
    const items: ListItem[] = [];
    for (const ent of entries) {
      const name = ent.name;
      // A file whose name is not UTF-8 was not written by Holdfast and cannot be named by a key.
      if (!isUtf8(name)) continue;
      const nameStr = name.toString('utf8');
      if (TEMP_NAME.test(nameStr)) continue;
      const path = join(dirPath, nameStr);
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        // Follow links to files; never descend linked folders (cycles, escapes).
        const st = await stat(path).catch(() => undefined);
        isDir = false;
        isFile = st?.isFile() ?? false;
      }
      if (!isDir && !isFile) continue;
      // A folder "a" holds keys "a/…", so it sorts as "a/" among its siblings.
      const key = Buffer.concat([base, name, isDir ? SLASH : EMPTY]);
      if (isDir) {
        if (!startsWith(key, prefix) && !startsWith(prefix, key)) continue;
        // Every key under "a/" sorts before startAfter unless startAfter itself is under "a/".
        if (startAfter !== undefined && Buffer.compare(key, startAfter) < 0 && !startsWith(startAfter, key)) continue;
      } else {
        if (!startsWith(key, prefix)) continue;
        if (startAfter !== undefined && Buffer.compare(key, startAfter) <= 0) continue;
      }
      items.push({ key, path, dir: isDir });
    }
    items.sort((a, b) => Buffer.compare(a.key, b.key));

    for (let i = 0; i < items.length; ) {
      const item = items[i]!;
      if (item.dir) {
        yield* this.walk(item.path, item.key, prefix, startAfter, signal);
        i++;
        continue;
      }
      // Stat a run of consecutive files together, then yield them in order.
      let j = i;
      while (j < items.length && j - i < STAT_BATCH && !items[j]!.dir) j++;
      const run = items.slice(i, j);
      const stats = await Promise.all(run.map((it) => stat(it.path).catch(() => undefined)));
      throwIfAborted(signal);
      for (let k = 0; k < run.length; k++) {
        const st = stats[k];
        // Gone since readdir (deleted concurrently), or replaced by a folder: skip.
        if (st === undefined || !st.isFile()) continue;
        yield { key: run[k]!.key.toString('utf8'), size: st.size, modifiedMs: st.mtimeMs, mtimeMs: st.mtimeMs };
      }
      i = j;
    }
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }
}

/** SHA-256 of the first `size` bytes of an open file. */
async function hashHandle(fh: FileHandle, size: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(Math.max(size, 1), 1024 * 1024));
  let pos = 0;
  while (pos < size) {
    throwIfAborted(signal);
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash.digest('hex');
}
