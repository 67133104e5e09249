/**
 * The engine's own thread: onnxruntime-node runs a session synchronously on the calling thread, so sampling lives
 * here, never on the event loop that holds queue locks. A message loop around EngineRuntime: messages in, one
 * scheduler step at a time, sleep while idle.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { EngineThreadOptions, FromThread, ToThread } from './engine-protocol';
import { describeError, EngineRuntime } from './engine-runtime';

if (!parentPort) throw new Error('engine-thread must run as a worker thread');
const port = parentPort;
const post = (m: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function main(options: EngineThreadOptions): Promise<void> {
  let runtime: EngineRuntime;
  try {
    runtime = await EngineRuntime.open(options, post);
  } catch (err) {
    post({ type: 'failed-start', error: describeError(err) });
    return;
  }
  const inbox: ToThread[] = [];
  let wake: (() => void) | null = null;
  port.on('message', (m: ToThread) => {
    inbox.push(m);
    wake?.();
  });
  let steps = 0;
  for (;;) {
    for (const m of inbox.splice(0)) {
      if (m.type === 'shutdown') return runtime.release();
      await runtime.handle(m);
    }
    const { idle, retryInMs } = await runtime.step();
    if (!idle) {
      if (++steps === options.exitAfterSteps) process.exit(70); // fault injection: ends this thread only
      await new Promise((r) => setImmediate(r)); // let messages in between steps
      continue;
    }
    // idle: sleep until a message arrives or the batch's wait window closes
    if (inbox.length === 0) {
      await new Promise<void>((r) => {
        wake = r;
        if (retryInMs !== null) setTimeout(r, Math.max(0, retryInMs));
      });
    }
    wake = null;
  }
}

main(workerData as EngineThreadOptions).then(
  () => process.exit(0),
  (err: unknown) => {
    post({ type: 'failed-start', error: describeError(err) });
    process.exit(1);
  },
);
