// Benchmark source trees: many small files of random content spread over
// directories, one large random file, the "1% changed" mutation, and the checks
// that a destination really holds what the source holds.

import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, open, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SmallTreeSpec {
  files: number;
  dirs: number;
  fileSize: number;
}

/** Relative paths of the small tree, in creation order: d00/f0000.bin … */
export function smallTreeKeys(spec: SmallTreeSpec): string[] {
  const keys: string[] = [];
  const perDir = Math.ceil(spec.files / spec.dirs);
  for (let i = 0; i < spec.files; i++) {
    const d = Math.floor(i / perDir);
    keys.push(`d${String(d).padStart(2, '0')}/f${String(i % perDir).padStart(4, '0')}.bin`);
  }
  return keys;
}

/** Writes `spec.files` files of `spec.fileSize` random bytes under `root`. */
export async function makeSmallTree(root: string, spec: SmallTreeSpec): Promise<string[]> {
  const keys = smallTreeKeys(spec);
  const dirs = new Set(keys.map((k) => k.slice(0, k.indexOf('/'))));
  for (const d of dirs) await mkdir(join(root, d), { recursive: true });
  // One random pool, sliced: random content without 5,000 separate randomBytes calls.
  const pool = randomBytes(keys.length * spec.fileSize);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const i = next++;
      await writeFile(join(root, keys[i]!), pool.subarray(i * spec.fileSize, (i + 1) * spec.fileSize));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return keys;
}

/** Writes one file of `size` random bytes (in 16 MiB chunks). */
export async function makeLargeFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const chunk = 16 * 1024 * 1024;
    for (let off = 0; off < size; off += chunk) {
      const buf = randomBytes(Math.min(chunk, size - off));
      await fh.write(buf, 0, buf.length, off);
    }
  } finally {
    await fh.close();
  }
}

/** Rewrites `count` distinct random files with new random content (same size); returns their keys. */
export async function mutate(root: string, keys: readonly string[], count: number, fileSize: number): Promise<string[]> {
  const chosen = new Set<string>();
  while (chosen.size < Math.min(count, keys.length)) chosen.add(keys[randomInt(keys.length)]!);
  for (const k of chosen) await writeFile(join(root, k), randomBytes(fileSize));
  return [...chosen];
}

/** Number of regular files under `root` whose name ends with `suffix` (recursively). */
export async function countFiles(root: string, suffix = ''): Promise<number> {
  let n = 0;
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  for (const e of entries) if (e.isFile() && e.name.endsWith(suffix) && !e.name.startsWith('.holdfast.')) n++;
  return n;
}

/**
 * Keys whose destination copy differs from the source. `objectPath` maps a key
 * to the file that holds the object's bytes (a local destination: the file
 * itself; s3rver: `<bucket dir>/<prefix>/<key>._S3rver_object`).
 */
export async function differing(sourceRoot: string, keys: readonly string[], objectPath: (key: string) => string): Promise<string[]> {
  const bad: string[] = [];
  for (const k of keys) {
    const [a, b] = await Promise.all([readFile(join(sourceRoot, k)), readFile(objectPath(k)).catch(() => undefined)]);
    if (b === undefined || !a.equals(b)) bad.push(k);
  }
  return bad;
}
