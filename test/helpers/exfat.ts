// A real case-insensitive file system for tests: a fresh exFAT image, attached
// to a loop device and mounted through FUSE (exfat-fuse). exFAT ignores case
// in names and preserves it, as APFS, NTFS and SMB shares do by default.
// (vfat would do as well, but needs a kernel module this sandbox lacks; FUSE
// needs only /dev/fuse.)
//
// Needs root, /dev/fuse, losetup, mkfs.exfat (exfatprogs) and
// mount.exfat-fuse (exfat-fuse). Without them `mountExfat` returns the reason
// for an explicit skip; with them, any failure to mount is thrown: a broken
// setup fails the test, it is not skipped.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from './tmp.js';

export interface ExfatMount {
  /** The mounted directory (empty at first). */
  readonly path: string;
  /** Unmounts, detaches the loop device and removes the image. */
  stop(): Promise<void>;
}

const TOOLS = ['losetup', 'mkfs.exfat', 'mount.exfat-fuse', 'umount'];

function missingTool(): string | undefined {
  for (const tool of TOOLS) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).status !== 0) return tool;
  }
  return undefined;
}

/** Mounts a new exFAT file system of `sizeMiB`; or returns why this machine cannot (for `t.skip`). */
export async function mountExfat(sizeMiB = 32): Promise<ExfatMount | { readonly skip: string }> {
  const need = 'needs root, /dev/fuse, losetup, mkfs.exfat and mount.exfat-fuse (apt-get install exfatprogs exfat-fuse)';
  if (process.getuid?.() !== 0) return { skip: `a case-insensitive file system to test on ${need}; not running as root` };
  if (!existsSync('/dev/fuse')) return { skip: `a case-insensitive file system to test on ${need}; there is no /dev/fuse` };
  const tool = missingTool();
  if (tool !== undefined) return { skip: `a case-insensitive file system to test on ${need}; ${tool} is not installed` };

  const tmp = await makeTempDir('holdfast-exfat-');
  const image = join(tmp.path, 'exfat.img');
  const path = join(tmp.path, 'mnt');
  await mkdir(path);
  await writeFile(image, '');
  await truncate(image, sizeMiB * 1024 * 1024);
  let device: string | undefined;
  let mounted = false;
  const stop = async (): Promise<void> => {
    if (mounted) execFileSync('umount', [path]);
    mounted = false;
    if (device !== undefined) execFileSync('losetup', ['-d', device]);
    device = undefined;
    await rm(tmp.path, { recursive: true, force: true });
  };
  try {
    execFileSync('mkfs.exfat', [image], { stdio: 'pipe' });
    device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    execFileSync('mount.exfat-fuse', [device, path], { stdio: 'pipe' });
    mounted = true;
  } catch (e) {
    await stop().catch(() => undefined);
    throw new Error(`the exFAT test file system could not be mounted: ${(e as Error).message}`, { cause: e });
  }
  return { path, stop };
}
