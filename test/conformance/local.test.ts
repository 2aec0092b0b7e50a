// The backend conformance suite against the file:// backend in a temp directory.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openBackend } from '../../src/backends/registry.js';
import { makeTempDir } from '../helpers/tmp.js';
import { backendConformance } from './backend-suite.js';

backendConformance('file:// (fsync on)', async () => {
  const tmp = await makeTempDir('holdfast-conf-local-');
  const url = pathToFileURL(join(tmp.path, 'dest')).href;
  const backend = await openBackend(url);
  await backend.ensureReady();
  return {
    backend,
    reopen: () => openBackend(url),
    async openUnready() {
      // A directory below a regular file can never be created.
      const file = join(tmp.path, 'a-file');
      await writeFile(file, 'not a directory');
      return openBackend(pathToFileURL(join(file, 'dest')).href);
    },
    async cleanup() {
      await backend.close();
      await tmp.cleanup();
    },
  };
});
