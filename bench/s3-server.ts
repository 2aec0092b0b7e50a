// The benchmarks' S3 server: s3rver in a child process (bench/s3rver-child.ts),
// so its CPU counts against neither tool and it does not share the
// orchestrator's event loop. Used by bench/run.ts and bench/fan-out.ts.

import { fork, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { procCpuMs } from './measure.js';

const S3RVER_CHILD = fileURLToPath(new URL('./s3rver-child.js', import.meta.url));
const s3rverPids = new Set<number>();

export class S3Server {
  /** Servers running now (to kill them if the benchmark is interrupted). */
  static readonly pids: ReadonlySet<number> = s3rverPids;

  readonly #child: ChildProcess;
  readonly endpoint: string;
  readonly dir: string;
  #nextId = 0;

  private constructor(child: ChildProcess, port: number, dir: string) {
    this.#child = child;
    this.endpoint = `http://127.0.0.1:${port}`;
    this.dir = dir;
  }

  static async start(dir: string): Promise<S3Server> {
    await mkdir(dir, { recursive: true });
    const child = fork(S3RVER_CHILD, [dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    if (child.pid !== undefined) s3rverPids.add(child.pid);
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('s3rver did not start within 20 s')), 20_000);
      child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
      child.on('message', (m: { type: string; port?: number }) => {
        if (m.type === 'ready' && m.port !== undefined) {
          clearTimeout(timer);
          resolve(m.port);
        }
      });
    });
    return new S3Server(child, port, dir);
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** CPU time (ms) the server has used so far. */
  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  async createBucket(name: string): Promise<void> {
    const id = this.#nextId++;
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { type: string; id?: number; message?: string }): void => {
        if (m.id !== id) return;
        this.#child.off('message', onMessage);
        if (m.type === 'done') resolve();
        else reject(new Error(`createBucket ${name}: ${m.message}`));
      };
      this.#child.on('message', onMessage);
      this.#child.send({ type: 'createBucket', id, name });
    });
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    if (child.pid !== undefined) s3rverPids.delete(child.pid);
  }
}
