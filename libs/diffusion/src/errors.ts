/** Input the engine cannot run: never worth retrying. */
export class InvalidSamplingRequest extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'InvalidSamplingRequest';
  }
}
