// Temporary directories for tests: one fresh directory per call, removed by
// `cleanup()`. Set HOLDFAST_KEEP_TMP=1 to keep them for a post-mortem.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  /** Absolute path of the new, empty directory. */
  readonly path: string;
  /** Removes the directory and everything in it (idempotent). */
  cleanup(): Promise<void>;
}

/** Creates an empty directory under the OS temp dir, named `<prefix><random>`. */
export async function makeTempDir(prefix = 'holdfast-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    async cleanup(): Promise<void> {
      if (process.env.HOLDFAST_KEEP_TMP === '1') return;
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** Runs `fn` with a fresh temp directory and removes it afterwards, whatever happens. */
export async function withTempDir<T>(prefix: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir.path);
  } finally {
    await dir.cleanup();
  }
}

/** Every file below `root`, as "/"-separated relative paths, sorted; [] when `root` does not exist. */
export function listTree(root: string, prefix = ''): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  for (const name of readdirSync(join(root, prefix))) {
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(join(root, rel)).isDirectory()) out.push(...listTree(root, rel));
    else out.push(rel);
  }
  return prefix ? out : out.sort();
}
