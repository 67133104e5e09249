import type { DenoiseModel, FullStepInput, PartialStepInput, SampleHeadInput } from '@dimoo/diffusion';

/** Bytes on the wire of a typed array as the graphs see it (int32 ids are int64 in the graphs). */
const wire = (v: unknown): number =>
  v instanceof Int32Array ? v.length * 8 : ArrayBuffer.isView(v) ? v.byteLength : Array.isArray(v) ? v.reduce((n: number, p) => n + wire(p), 0) : 0;
const sum = (o: object) => Object.values(o).reduce((n: number, v) => n + wire(v), 0);

/** Wraps a model to count the bytes crossing the runtime boundary (inputs fed, outputs fetched). */
export class CountingModel implements DenoiseModel {
  bytesIn = 0;
  bytesOut = 0;

  constructor(private readonly inner: DenoiseModel) {}

  get shape() {
    return this.inner.shape;
  }

  reset(): void {
    this.bytesIn = this.bytesOut = 0;
  }

  private async count<T extends object>(input: object, run: () => Promise<T>): Promise<T> {
    this.bytesIn += sum(input) + ('vocab' in input ? 16 : 0);
    const out = await run();
    this.bytesOut += sum(out);
    return out;
  }

  fullStep(x: FullStepInput) {
    return this.count(x, () => this.inner.fullStep(x));
  }

  partialStep(x: PartialStepInput) {
    return this.count(x, () => this.inner.partialStep(x));
  }

  sampleHead(x: SampleHeadInput) {
    return this.count(x, () => this.inner.sampleHead(x));
  }
}
