// requestSignal: one signal per request, linked to a shared signal through a
// single listener whatever the number of requests, unlinked when the last
// request is done.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { requestSignal, withRequestSignal } from '../../src/core/abort.js';

describe('requestSignal', () => {
  it('many concurrent requests add one listener to the shared signal, removed when the last is done', () => {
    const shared = new AbortController();
    const requests = Array.from({ length: 50 }, () => requestSignal(shared.signal));
    assert.equal(getEventListeners(shared.signal, 'abort').length, 1);
    for (const r of requests.slice(0, 49)) r.done();
    assert.equal(getEventListeners(shared.signal, 'abort').length, 1, 'still one while a request is open');
    requests[49]!.done();
    requests[49]!.done(); // idempotent
    assert.equal(getEventListeners(shared.signal, 'abort').length, 0, 'nothing left on the shared signal');
  });

  it('aborting the shared signal aborts every open request with its reason; a done one is left alone', () => {
    const shared = new AbortController();
    const open = [requestSignal(shared.signal), requestSignal(shared.signal)];
    const finished = requestSignal(shared.signal);
    finished.done();
    const reason = new Error('second Ctrl-C');
    shared.abort(reason);
    for (const r of open) assert.equal(r.signal.reason, reason);
    assert.equal(finished.signal.aborted, false);
    assert.equal(requestSignal(shared.signal).signal.reason, reason, 'a request started after the abort starts aborted');
  });

  it('one request aborted alone leaves its siblings and the shared signal running', () => {
    const shared = new AbortController();
    const a = requestSignal(shared.signal);
    const b = requestSignal(shared.signal);
    a.abort(new Error('this part failed'));
    assert.equal(a.signal.aborted, true);
    assert.equal(b.signal.aborted, false);
    assert.equal(shared.signal.aborted, false);
  });

  it('withRequestSignal unlinks even when the request fails', async () => {
    const shared = new AbortController();
    await assert.rejects(
      withRequestSignal(shared.signal, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(getEventListeners(shared.signal, 'abort').length, 0);
  });
});
