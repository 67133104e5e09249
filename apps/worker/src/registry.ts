/** What this worker says about itself in the worker registry (`workers`, read by GET /v1/admin/workers). */
import { WORKER_LAST_ERROR_MAX } from '@dimoo/contracts';

/** Masked before an error is shown to admins: object keys, API keys and long base64 runs (image data, secrets). */
const MASKS: readonly [RegExp, string][] = [
  [/\bteams\/\S+/g, 'teams/…'],
  [/\bdimoo_[A-Za-z0-9_-]+/g, 'dimoo_…'],
  [/[A-Za-z0-9+/=_-]{48,}/g, '…'],
];

/** A job error as the registry shows it: its code and the message's first line, masked, at most WORKER_LAST_ERROR_MAX characters. */
export function shortError(code: string, message: string): string {
  let line = message.split('\n').find((l) => l.trim() !== '') ?? '';
  for (const [pattern, mask] of MASKS) line = line.replace(pattern, mask);
  const text = `${code}: ${line.trim()}`;
  return text.length <= WORKER_LAST_ERROR_MAX ? text : `${text.slice(0, WORKER_LAST_ERROR_MAX - 1)}…`;
}
