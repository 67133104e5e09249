/** Stands in for node:fs/promises in the browser build: the SDK reads files only for Node callers. */
export function readFile(): never {
  throw new Error('reading files is not available in the browser');
}
