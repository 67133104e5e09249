/** The model directory or provider cannot serve: fix the deployment, do not retry the job. */
export class ModelLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelLoadError';
  }
}
