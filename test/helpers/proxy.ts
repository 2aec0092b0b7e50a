// An HTTP reverse proxy for tests, in front of a real S3 server (s3rver): it
// forwards every request verbatim (same headers, so SigV4 signatures still
// match; bodies streamed both ways; keep-alive on both sides), counts requests
// and request-body bytes per S3 operation, and injects faults at seeded rates:
// HTTP 500/503, S3 SlowDown, connection resets part-way through the request
// body, lost responses, stalls, a flipped byte in a forwarded body (`corrupt`),
// and a hook that holds a request until the test has acted (`gate`). Not a
// mock: every request that is not failed on purpose is served by the real
// server. It can also hash request bodies (`hashBodies`) or keep small ones
// (`keepBody`), and records each request's headers.
//
//   const s3 = await startS3Server();
//   const proxy = await startProxy({ target: s3.endpoint, seed: 42 });
//   proxy.setFaults([{ rate: 0.2, faults: [FAULT_500, FAULT_SLOW_DOWN, FAULT_RESET] }]);
//   ... push with s3Endpoint: proxy.endpoint ...
//   proxy.op('PutObject').bodyBytes
//   after(() => proxy.stop());
//
// About resets and s3rver: s3rver streams a PutObject/UploadPart body straight
// into its object (or part) file, so an interrupted request leaves a partial
// file behind (visible to HEAD and LIST, without the holdfast-sha256 metadata
// for a new key). Real S3 stores nothing. So a reset here always cuts the body
// strictly before its last byte: the server never receives a complete body it
// could mistake for a stored object, whatever it does with the partial one.

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** The S3 operations the proxy tells apart (path-style addressing: /bucket/key). */
export type S3Op =
  | 'PutObject'
  | 'UploadPart'
  | 'CreateMultipartUpload'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'ListMultipartUploads'
  | 'HeadObject'
  | 'HeadBucket'
  | 'ListObjects'
  | 'GetObject'
  | 'DeleteObject'
  | 'DeleteObjects'
  | 'CreateBucket'
  | 'Other';

/** The operations whose request bodies carry object content. */
export const CONTENT_OPS: readonly S3Op[] = ['PutObject', 'UploadPart'];

/** Which S3 operation a request is, from its method, path and query. */
export function classifyRequest(method: string, url: string): { op: S3Op; bucket: string; key: string } {
  const u = new URL(url, 'http://proxy.invalid');
  const q = u.searchParams;
  const path = u.pathname.replace(/^\//, '');
  const slash = path.indexOf('/');
  const bucket = decodeURIComponent(slash < 0 ? path : path.slice(0, slash));
  const key = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
  const onKey = key !== '';
  let op: S3Op = 'Other';
  switch (method) {
    case 'PUT':
      if (!onKey) op = 'CreateBucket';
      else if (q.has('partNumber') && q.has('uploadId')) op = 'UploadPart';
      else op = 'PutObject';
      break;
    case 'POST':
      if (onKey && q.has('uploads')) op = 'CreateMultipartUpload';
      else if (onKey && q.has('uploadId')) op = 'CompleteMultipartUpload';
      else if (!onKey && q.has('delete')) op = 'DeleteObjects';
      break;
    case 'HEAD':
      op = onKey ? 'HeadObject' : 'HeadBucket';
      break;
    case 'GET':
      if (!onKey && q.has('uploads')) op = 'ListMultipartUploads';
      else if (!onKey) op = 'ListObjects';
      else if (q.has('uploadId')) op = 'ListParts';
      else op = 'GetObject';
      break;
    case 'DELETE':
      if (onKey && q.has('uploadId')) op = 'AbortMultipartUpload';
      else if (onKey) op = 'DeleteObject';
      break;
  }
  return { op, bucket, key };
}

/** A fault the proxy can inject into one request. */
export type Fault =
  /** Read the whole request body, then answer with this status and an S3 XML error (no body for HEAD). */
  | { readonly kind: 'status'; readonly status: number; readonly code: string; readonly message?: string }
  /** Forward part of the request body (never all of it), then destroy both connections. */
  | { readonly kind: 'reset' }
  /** Forward the request completely, let the server act on it, then drop the connection instead of answering. */
  | { readonly kind: 'lost-response' }
  /** Wait this long before forwarding; the request then proceeds normally. */
  | { readonly kind: 'stall'; readonly ms: number }
  /**
   * Forward the request with one byte of its body flipped (at byte `at`, default
   * the middle), as a faulty network path or middlebox would; the server's own
   * answer is relayed. A server that verifies a body checksum refuses it.
   */
  | { readonly kind: 'corrupt'; readonly at?: number }
  /** Hold the request (its body unread) until `before` resolves, then forward it normally: a hook to act between two requests. */
  | { readonly kind: 'gate'; readonly before: (rec: RequestRecord) => Promise<void> };

export const FAULT_500: Fault = { kind: 'status', status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' };
export const FAULT_503: Fault = { kind: 'status', status: 503, code: 'ServiceUnavailable', message: 'Service is unable to handle request.' };
export const FAULT_SLOW_DOWN: Fault = { kind: 'status', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' };
export const FAULT_RESET: Fault = { kind: 'reset' };
export const FAULT_LOST_RESPONSE: Fault = { kind: 'lost-response' };
export const stall = (ms: number): Fault => ({ kind: 'stall', ms });
export const FAULT_CORRUPT: Fault = { kind: 'corrupt' };
export const gate = (before: (rec: RequestRecord) => Promise<void>): Fault => ({ kind: 'gate', before });
export const statusFault = (status: number, code: string, message = code): Fault => ({ kind: 'status', status, code, message });

/** What a fault rule can tell a request by, before its body arrives. */
export interface RequestInfo {
  readonly op: S3Op;
  readonly bucket: string;
  readonly key: string;
  readonly method: string;
  readonly url: string;
  /** The declared Content-Length (0 when absent). */
  readonly contentLength: number;
}

export interface FaultRule {
  /** Only these operations (default: all). */
  readonly ops?: readonly S3Op[];
  /** Only requests this accepts (e.g. one key; `url` tells apart what the S3 names do not, such as Azure's comp=block). */
  readonly match?: (req: RequestInfo) => boolean;
  /** Probability that a matching request gets a fault (1 = every one). */
  readonly rate: number;
  /** One is picked per faulted request, uniformly unless weights are given. */
  readonly faults: readonly Fault[];
  readonly weights?: readonly number[];
  /** At most this many faults from this rule (default: no limit). */
  readonly limit?: number;
}

/** One proxied request, as the proxy saw it. */
export interface RequestRecord {
  readonly seq: number;
  readonly op: S3Op;
  readonly method: string;
  /** The request target as received (path and query): tells apart operations the S3 names do not (Azure's comp=block / comp=blocklist). */
  readonly url: string;
  readonly bucket: string;
  readonly key: string;
  /** The Content-Length the client declared (0 when absent). */
  readonly contentLength: number;
  /** The request headers as received (names in lowercase; repeated headers joined with ", "). */
  readonly headers: Readonly<Record<string, string>>;
  /** With `hashBodies`: SHA-256 (hex) of the request body as the client sent it, once it has been read whole. */
  bodySha256: string | undefined;
  /** With `keepBody` accepting the request: the request body as the client sent it, once it has been read whole. */
  body: Buffer | undefined;
  /** Request-body bytes read from the client (for a reset: only what arrived before it). */
  bodyBytes: number;
  /** The injected fault, if any (a stall is a fault that still lets the request through). */
  fault: Fault['kind'] | undefined;
  /** The status the client received; undefined when it received none (reset, lost response, client gone). */
  status: number | undefined;
  /** ok: a 2xx reached the client; error: a non-2xx did; dropped: no response reached it. */
  result: 'pending' | 'ok' | 'error' | 'dropped';
  readonly startedAt: number;
  endedAt: number | undefined;
}

export interface OpCounters {
  requests: number;
  bodyBytes: number;
  /** Requests answered 2xx. */
  ok: number;
  /** Requests answered with another status (injected or the server's own). */
  errors: number;
  /** Requests the client got no answer to. */
  dropped: number;
  /** Faults injected (stalls included). */
  faults: number;
}

export interface ProxyEvents {
  /** A request arrived (its body may still be on its way). */
  start: [RequestRecord];
  /** A request ended: its response was fully relayed, or it was dropped. */
  end: [RequestRecord];
}

export interface S3Proxy {
  /** e.g. http://127.0.0.1:40123: use as the S3 endpoint. */
  readonly endpoint: string;
  /** Every request since the last reset(), in arrival order. */
  readonly records: readonly RequestRecord[];
  /** Counters for one operation since the last reset(). */
  op(op: S3Op): Readonly<OpCounters>;
  /** Counters for every operation seen since the last reset(). */
  counters(): Record<string, Readonly<OpCounters>>;
  /** Request-body bytes of PutObject + UploadPart since the last reset(). */
  contentBytes(): number;
  /** Requests started but not yet ended. */
  inFlight(): RequestRecord[];
  /** Replaces the fault rules; a seed restarts the fault PRNG. */
  setFaults(rules: readonly FaultRule[], seed?: number): void;
  /** Clears counters and records (faults and seed stay). */
  reset(): void;
  on<E extends keyof ProxyEvents>(event: E, listener: (...args: ProxyEvents[E]) => void): () => void;
  stop(): Promise<void>;
}

/** mulberry32: a small, fast, seeded PRNG; returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hop-by-hop headers belong to one connection (RFC 9110 §7.6.1); each side of the proxy sets its own. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

/** Raw headers (name, value, name, value…) without the hop-by-hop ones, in their original order and case. */
function endToEnd(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1] ?? '');
  }
  return out;
}

function emptyCounters(): OpCounters {
  return { requests: 0, bodyBytes: 0, ok: 0, errors: 0, dropped: 0, faults: 0 };
}

function xmlError(code: string, message: string, resource: string): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message><Resource>${esc(resource)}</Resource><RequestId>holdfast-proxy</RequestId></Error>`;
}

export async function startProxy(options: {
  target: string;
  seed?: number;
  faults?: readonly FaultRule[];
  /** Hash every request body (RequestRecord.bodySha256). */
  hashBodies?: boolean;
  /** Keep the bodies of the requests this accepts (RequestRecord.body): small ones, such as CompleteMultipartUpload's XML. */
  keepBody?: (req: RequestInfo) => boolean;
  /** Listen on this port (a proxy brought back where it was); default: a free one. */
  port?: number;
}): Promise<S3Proxy> {
  const target = new URL(options.target);
  // Keep-alive upstream too, as a client-side connection pool would.
  const agent = new Agent({ keepAlive: true, maxSockets: 128 });
  const emitter = new EventEmitter();
  let rules: readonly FaultRule[] = options.faults ?? [];
  let random = seededRandom(options.seed ?? 1);
  let used = new Map<FaultRule, number>();
  let records: RequestRecord[] = [];
  let counters = new Map<S3Op, OpCounters>();
  let seq = 0;
  const open = new Set<RequestRecord>();
  const sockets = new Set<Socket>();

  const countersFor = (op: S3Op): OpCounters => {
    let c = counters.get(op);
    if (c === undefined) counters.set(op, (c = emptyCounters()));
    return c;
  };

  const pickFault = (info: RequestInfo): Fault | undefined => {
    for (const rule of rules) {
      if (rule.ops !== undefined && !rule.ops.includes(info.op)) continue;
      if (rule.match !== undefined && !rule.match(info)) continue;
      // Draw for every matching request, faulted or not, so a seed replays the same sequence of decisions.
      const hit = random() < rule.rate;
      const pick = random();
      if (!hit || rule.faults.length === 0) return undefined;
      const n = used.get(rule) ?? 0;
      if (rule.limit !== undefined && n >= rule.limit) return undefined;
      used.set(rule, n + 1);
      const weights = rule.weights ?? rule.faults.map(() => 1);
      const total = weights.reduce((s, w) => s + w, 0);
      let x = pick * total;
      for (let i = 0; i < rule.faults.length; i++) {
        x -= weights[i] ?? 0;
        if (x < 0) return rule.faults[i];
      }
      return rule.faults[rule.faults.length - 1];
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const info = classifyRequest(method, url);
    const contentLength = Number(req.headers['content-length'] ?? 0) || 0;
    const rec: RequestRecord = {
      seq: ++seq,
      ...info,
      method,
      url,
      contentLength,
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')])),
      bodySha256: undefined,
      body: undefined,
      bodyBytes: 0,
      fault: undefined,
      status: undefined,
      result: 'pending',
      startedAt: Date.now(),
      endedAt: undefined,
    };
    const generation = records;
    const c = countersFor(info.op);
    records.push(rec);
    open.add(rec);
    c.requests++;
    const fault = pickFault({ ...info, method, url, contentLength });
    if (fault !== undefined) {
      rec.fault = fault.kind;
      c.faults++;
    }
    // Bytes are counted as they are read from the client, whatever happens next. Only
    // once the body is consumed: a 'data' listener sets the stream flowing, and bytes
    // flowing during a stall, before the forwarding starts, would be lost.
    const keep = options.keepBody?.({ ...info, method, url, contentLength }) === true;
    const consume = (): void => {
      const hash = options.hashBodies === true ? createHash('sha256') : undefined;
      const kept: Buffer[] = [];
      req.on('data', (chunk: Buffer) => {
        rec.bodyBytes += chunk.length;
        hash?.update(chunk);
        if (keep) kept.push(chunk);
        if (generation === records) c.bodyBytes += chunk.length;
      });
      req.on('end', () => {
        if (hash !== undefined) rec.bodySha256 = hash.digest('hex');
        if (keep) rec.body = Buffer.concat(kept);
      });
    };

    let ended = false;
    const end = (result: RequestRecord['result'], status?: number): void => {
      if (ended) return;
      ended = true;
      rec.result = result;
      rec.status = status;
      rec.endedAt = Date.now();
      open.delete(rec);
      if (generation === records) {
        if (result === 'ok') c.ok++;
        else if (result === 'error') c.errors++;
        else c.dropped++;
      }
      emitter.emit('end', rec);
    };
    // The client went away (killed, or we destroyed its socket) before its response was complete.
    res.on('close', () => {
      if (!res.writableFinished) end('dropped');
    });
    emitter.emit('start', rec);
    if (ended) return; // a listener killed the client already

    if (fault?.kind === 'status') {
      // A server that read the body and then failed: drain it, then answer.
      consume();
      req.on('end', () => {
        const body = method === 'HEAD' ? '' : xmlError(fault.code, fault.message ?? fault.code, url);
        res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'holdfast-proxy' });
        res.end(body, () => end(fault.status >= 200 && fault.status < 300 ? 'ok' : 'error', fault.status));
      });
      return;
    }
    const go = (): void => forward(req, res, rec, fault, consume, end);
    if (fault?.kind === 'stall') {
      const timer = setTimeout(go, fault.ms);
      res.on('close', () => clearTimeout(timer));
    } else if (fault?.kind === 'gate') {
      fault.before(rec).then(go, () => {
        req.socket.destroy();
        end('dropped');
      });
    } else {
      go();
    }
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    rec: RequestRecord,
    fault: Fault | undefined,
    consume: () => void,
    end: (r: RequestRecord['result'], status?: number) => void,
  ): void => {
    if (res.destroyed) return;
    consume();
    // setHost: false and the client's own Host header: the SigV4 signature covers it.
    const upstream = httpRequest({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.rawHeaders),
      setHost: false,
      agent,
    });
    const drop = (): void => {
      upstream.destroy();
      req.socket.destroy();
      end('dropped');
    };
    upstream.on('error', () => {
      // The server (or our own destroy) cut the exchange: the client must see a broken connection too, never a made-up answer.
      if (!res.headersSent) req.socket.destroy();
      else res.destroy();
      end('dropped');
    });
    upstream.on('response', (up) => {
      const status = up.statusCode ?? 502;
      if (fault?.kind === 'lost-response') {
        // The server acted on the request; the client never learns it did.
        up.resume();
        up.on('end', drop);
        return;
      }
      res.writeHead(status, up.statusMessage, endToEnd(up.rawHeaders));
      up.pipe(res);
      up.on('error', () => res.destroy());
      res.on('finish', () => end(status >= 200 && status < 300 ? 'ok' : 'error', status));
    });

    if (fault?.kind === 'reset') {
      // Cut strictly before the last byte, so the server never gets a whole body.
      const total = rec.contentLength;
      const cutAt = total > 0 ? Math.floor(random() * total) : 0;
      let forwarded = 0;
      if (cutAt === 0) {
        drop();
        return;
      }
      req.on('data', (chunk: Buffer) => {
        if (forwarded >= cutAt) return;
        const part = chunk.subarray(0, cutAt - forwarded);
        forwarded += part.length;
        if (!upstream.write(part)) req.pause();
        if (forwarded >= cutAt) {
          req.pause();
          // Let the forwarded bytes reach the server before the connections go down.
          setTimeout(drop, 5);
        }
      });
      upstream.on('drain', () => {
        if (forwarded < cutAt) req.resume();
      });
      req.on('end', () => drop());
      return;
    }
    if (fault?.kind === 'corrupt') {
      // Flip one byte on its way through; everything else is forwarded as it came.
      const at = fault.at ?? Math.floor(rec.contentLength / 2);
      let offset = 0;
      req.on('data', (chunk: Buffer) => {
        let out = chunk;
        if (at >= offset && at < offset + chunk.length) {
          out = Buffer.from(chunk);
          out[at - offset] = (out[at - offset] ?? 0) ^ 0xff;
        }
        offset += chunk.length;
        if (!upstream.write(out)) req.pause();
      });
      upstream.on('drain', () => req.resume());
      req.on('end', () => upstream.end());
    } else {
      req.pipe(upstream);
    }
    // A client killed mid-request: the server sees its connection drop too, as it would without the proxy.
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
  };

  const server: Server = createServer(handle);
  // Generous timeouts: idle keep-alive sockets must not be closed under a client
  // about to reuse them (that race would look like an injected reset).
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let stopped = false;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    get records() {
      return records;
    },
    op: (op) => ({ ...(counters.get(op) ?? emptyCounters()) }),
    counters: () => Object.fromEntries([...counters].map(([k, v]) => [k, { ...v }])),
    contentBytes: () => CONTENT_OPS.reduce((n, op) => n + (counters.get(op)?.bodyBytes ?? 0), 0),
    inFlight: () => [...open],
    setFaults(next, seed) {
      rules = [...next];
      used = new Map();
      if (seed !== undefined) random = seededRandom(seed);
    },
    reset() {
      records = [];
      counters = new Map();
      open.clear();
    },
    on(event, listener) {
      emitter.on(event, listener as (...a: unknown[]) => void);
      return () => emitter.off(event, listener as (...a: unknown[]) => void);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
