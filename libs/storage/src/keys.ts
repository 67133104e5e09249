// Object keys. Everything a team owns lives under `teams/<teamId>/`, a job's objects under `teams/<teamId>/jobs/<jobId>/`.

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const EXT = /^[A-Za-z0-9]{1,10}$/;

function check(kind: string, value: string, pattern: RegExp): string {
  if (!pattern.test(value) || value.includes('..')) throw new TypeError(`invalid ${kind} for an object key: ${JSON.stringify(value)}`);
  return value;
}

/** The prefix every job's objects live under. */
export const TEAMS_PREFIX = 'teams/';

function jobPrefix(teamId: string, jobId: string): string {
  return `teams/${check('team id', teamId, ID)}/jobs/${check('job id', jobId, ID)}`;
}

/** `teams/<teamId>/jobs/<jobId>/`: every object of the job (what deleting the job removes) */
export function jobObjectsPrefix(teamId: string, jobId: string): string {
  return `${jobPrefix(teamId, jobId)}/`;
}

/** `teams/<teamId>/jobs/<jobId>/result.<ext>`; the job's further images (`n`) `result-<index>.<ext>` */
export function resultKey(teamId: string, jobId: string, ext: string, index = 0): string {
  if (!Number.isInteger(index) || index < 0) throw new TypeError(`invalid result index ${index}`);
  return `${jobPrefix(teamId, jobId)}/result${index === 0 ? '' : `-${index}`}.${check('extension', ext.replace(/^\./, ''), EXT)}`;
}

/** `teams/<teamId>/jobs/<jobId>/inputs/<name>` (name as uploaded, e.g. `image.png`, `mask.png`) */
export function inputKey(teamId: string, jobId: string, name: string): string {
  return `${jobPrefix(teamId, jobId)}/inputs/${check('input name', name, NAME)}`;
}

/** `teams/<teamId>/jobs/<jobId>/previews/<step, 4 digits>.<ext>`, so previews list in step order. */
export function previewKey(teamId: string, jobId: string, step: number, ext = 'png'): string {
  if (!Number.isInteger(step) || step < 0) throw new TypeError(`invalid preview step ${step}`);
  return `${jobPrefix(teamId, jobId)}/previews/${String(step).padStart(4, '0')}.${check('extension', ext.replace(/^\./, ''), EXT)}`;
}

/** `teams/<teamId>/uploads/<uploadId>`: an image a team uploaded with a presigned URL (`POST /v1/uploads`). */
export function uploadKey(teamId: string, uploadId: string): string {
  return `teams/${check('team id', teamId, ID)}/uploads/${check('upload id', uploadId, ID)}`;
}

/** How long an upload is kept for jobs to use. */
export const UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;

/** Whether a key is an upload's (the sweeper removes them once expired). */
export function isUploadKey(key: string): boolean {
  return /^teams\/[^/]+\/uploads\/[^/]+$/.test(key);
}

/** The team and job a job object's key belongs to (inputs, previews, result); null for any other key. */
export function jobOfKey(key: string): { teamId: string; jobId: string } | null {
  const m = /^teams\/([^/]+)\/jobs\/([^/]+)\/./.exec(key);
  return m && ID.test(m[1]!) && ID.test(m[2]!) ? { teamId: m[1]!, jobId: m[2]! } : null;
}
