/**
 * Playground: submit any task the API takes as a chosen team (X-Dimoo-Team), follow it live through its event stream
 * (fetch with the bearer header, reconnecting with Last-Event-ID: the SDK's `events`), see previews and the result.
 * Paint jobs take a brushed mask; "retouch this result" paints over a finished result by reference (`{ jobId }`).
 */
import type { ChangeEvent, FormEvent } from 'react';
import { useEffect, useRef, useState } from 'react';
import type { JobTask } from '@dimoo/contracts';
import { DENSE_TARGETS, EDIT_TYPE_FIELD, EDIT_TYPES, JOB_PRIORITIES, JOB_TASKS, JobRequestSchema, OUTPUT_FORMATS, VIEWS } from '@dimoo/contracts';
import type { JobRequest } from '../api';
import { errorMessage } from '../api';
import { Card, ErrorBox, Loading, StatusBadge, TeamOptions } from '../components';
import { ms, shortId } from '../format';
import { Link } from '../router';
import { useSession, useTeams } from '../session';
import type { MaskHandle } from './mask-canvas';
import { MaskCanvas } from './mask-canvas';

const TASK_LABELS: Record<JobTask, string> = {
  t2i: 't2i: text to image',
  paint: 'paint: inpaint / retouch with a mask',
  i2i: 'i2i: image to image',
  mmu: 'mmu: ask about an image',
};

/** Number fields: left empty, the model's default applies. */
const NUMBER_FIELDS = {
  steps: { label: 'Steps', tasks: JOB_TASKS, step: 1 },
  seed: { label: 'Seed', tasks: JOB_TASKS, step: 1 },
  cfg: { label: 'CFG (text)', tasks: JOB_TASKS, step: 0.1 },
  cfgImage: { label: 'CFG (image)', tasks: ['i2i'], step: 0.1 },
  temperature: { label: 'Temperature', tasks: JOB_TASKS, step: 0.1 },
  previewEvery: { label: 'Preview every (steps)', tasks: JOB_TASKS, step: 1 },
  n: { label: 'Images (n)', tasks: ['t2i', 'paint', 'i2i'], step: 1 },
  genLength: { label: 'Answer length', tasks: ['mmu'], step: 1 },
  blockLength: { label: 'Block length', tasks: ['mmu'], step: 1 },
} as const satisfies Record<string, { label: string; tasks: readonly JobTask[]; step: number }>;
type NumberField = keyof typeof NUMBER_FIELDS;

/** An input image: a file read as a data URL (sent as base64), or an earlier job's result (sent as `{ jobId }`). */
type Picked = { kind: 'file'; name: string; dataUrl: string } | { kind: 'job'; jobId: string; url: string };
const shown = (p: Picked) => (p.kind === 'file' ? p.dataUrl : p.url);
const asInput = (p: Picked) => (p.kind === 'file' ? p.dataUrl : { jobId: p.jobId });

function readFile(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result as string);
    reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
    reader.readAsDataURL(file);
  });
}

function ImageInput({ name, label, value, onChange }: { name: string; label: string; value: Picked | null; onChange: (p: Picked | null) => void }) {
  const [error, setError] = useState<string | null>(null);
  const pick = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return onChange(null);
    try {
      setError(null);
      onChange({ kind: 'file', name: file.name, dataUrl: await readFile(file) });
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  return (
    <div className="image-input">
      <label>
        {label}
        <input name={name} type="file" accept="image/png,image/jpeg,image/webp" onChange={(e) => void pick(e)} />
      </label>
      {value?.kind === 'job' && <span className="muted small">the result of job {shortId(value.jobId)}</span>}
      {value && name !== 'image-paint' && <img className="thumb" src={shown(value)} alt={label} />}
      {error && <p className="error">{error}</p>}
    </div>
  );
}

interface Run {
  jobId: string;
  status: string;
  step: number;
  steps: number | null;
  previews: { step: number; url: string }[];
  images: string[];
  text: string | null;
  error: string | null;
  startedAt: number;
  finishedMs: number | null;
}

export function PlaygroundPage() {
  const session = useSession();
  const teams = useTeams();
  const [teamId, setTeamId] = useState('');
  const [task, setTask] = useState<JobTask>('t2i');
  const [prompt, setPrompt] = useState('a red circle at the top left');
  const [editType, setEditType] = useState<(typeof EDIT_TYPES)[number]>('edit');
  const [target, setTarget] = useState<(typeof DENSE_TARGETS)[number]>(DENSE_TARGETS[0]);
  const [view, setView] = useState<(typeof VIEWS)[number]>(VIEWS[0]);
  const [numbers, setNumbers] = useState<Partial<Record<NumberField, string>>>({});
  const [outputFormat, setOutputFormat] = useState('');
  const [priority, setPriority] = useState('');
  const [cache, setCache] = useState(false);
  const [image, setImage] = useState<Picked | null>(null);
  const [style, setStyle] = useState<Picked | null>(null);
  const [issues, setIssues] = useState<string[]>([]);
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [run, setRun] = useState<Run | null>(null);
  const mask = useRef<MaskHandle>(null);
  const stream = useRef<AbortController | null>(null);
  // object URLs made for previews and results: released when the page goes
  const urls = useRef<string[]>([]);
  useEffect(
    () => () => {
      stream.current?.abort();
      urls.current.forEach((u) => URL.revokeObjectURL(u));
    },
    [],
  );

  useEffect(() => {
    if (!teamId && teams.data?.items[0]) setTeamId(teams.data.items[0].id);
  }, [teams.data, teamId]);

  const takes = EDIT_TYPE_FIELD[editType];
  const update = (patch: Partial<Run>) => setRun((r) => (r ? { ...r, ...patch } : r));

  /** The request as the form says it, checked with the API's own schema (libs/contracts) before it is sent. */
  const buildRequest = (): JobRequest | null => {
    const num: Record<string, number> = {};
    for (const [k, v] of Object.entries(numbers)) {
      if (v !== undefined && v.trim() !== '' && (NUMBER_FIELDS[k as NumberField].tasks as readonly string[]).includes(task)) num[k] = Number(v);
    }
    const common = { ...num, ...(priority ? { priority } : {}), ...(cache ? { cache: true } : {}) };
    const imageOut = task !== 'mmu' && outputFormat ? { outputFormat } : {};
    const missing: string[] = [];
    let request: Record<string, unknown>;
    switch (task) {
      case 't2i':
        request = { task, prompt, ...common, ...imageOut };
        break;
      case 'paint': {
        const maskUrl = mask.current?.toDataUrl() ?? null;
        if (!image) missing.push('image: pick an image (or retouch a result)');
        else if (!maskUrl) missing.push('mask: paint the part to regenerate');
        request = { task, prompt, ...(image ? { image: asInput(image) } : {}), ...(maskUrl ? { mask: maskUrl } : {}), ...common, ...imageOut };
        break;
      }
      case 'i2i': {
        const images = [image, ...(editType === 'style' ? [style] : [])];
        if (images.some((i) => !i)) missing.push(editType === 'style' ? 'images: the content image and the style image' : 'images: pick an image');
        const field = takes === 'prompt' ? { prompt } : takes === 'target' ? { target } : { view };
        request = { task, editType, ...field, images: images.filter((i): i is Picked => i !== null).map(asInput), ...common, ...imageOut };
        break;
      }
      case 'mmu':
        if (!image) missing.push('image: pick an image');
        request = { task, question: prompt, ...(image ? { image: asInput(image) } : {}), ...common };
        break;
    }
    const parsed = JobRequestSchema.safeParse(request);
    const found = [...missing, ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(request)'}: ${i.message}`))];
    setIssues(found);
    // the request as typed, not as parsed: the API applies the same schema (data: URLs are its to strip)
    return found.length === 0 ? (request as JobRequest) : null;
  };

  /** Follows the job's events until it ends: progress, previews (fetched with the key), then the result. */
  const follow = async (jobId: string, signal: AbortSignal) => {
    // object URLs are kept for the page's life (a result may become the next paint job's image)
    const keep = (url: string) => {
      urls.current.push(url);
      return url;
    };
    try {
      for await (const e of session.sdk.events(jobId, { signal })) {
        switch (e.event) {
          case 'queued':
          case 'started':
            update({ status: e.event === 'started' ? 'running' : 'queued' });
            break;
          case 'progress':
            update({ status: 'running', step: e.data.step, steps: e.data.steps });
            break;
          case 'preview': {
            const url = keep(await session.previewUrl(jobId, e.data.step));
            setRun((r) => (r ? { ...r, previews: [...r.previews, { step: e.data.step, url }] } : r));
            break;
          }
          case 'completed': {
            const job = await session.sdk.get(jobId);
            const count = job.result?.kind === 'image' ? Math.max(1, job.result.images.length) : 0;
            const images: string[] = [];
            for (let i = 0; i < count; i++) images.push(keep(await session.resultUrl(jobId, i)));
            setRun((r) => (r ? { ...r, status: 'succeeded', step: job.step, images, text: e.data.text ?? null, finishedMs: Date.now() - r.startedAt } : r));
            break;
          }
          case 'failed':
            update({ status: 'failed', error: e.data.error ? `${e.data.error.type}: ${e.data.error.message}` : 'failed' });
            break;
          case 'canceled':
          case 'expired':
            update({ status: e.event });
            break;
        }
      }
    } catch (err) {
      if (!signal.aborted) update({ error: errorMessage(err) });
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSubmitError(null);
    const request = buildRequest();
    if (!request || !teamId) return;
    try {
      const job = await session.submitAs(teamId, request);
      stream.current?.abort();
      const controller = new AbortController();
      stream.current = controller;
      setRun({
        jobId: job.id,
        status: job.status,
        step: 0,
        steps: job.steps,
        previews: [],
        images: [],
        text: null,
        error: null,
        startedAt: Date.now(),
        finishedMs: null,
      });
      void follow(job.id, controller.signal);
    } catch (err) {
      setSubmitError(err);
    }
  };

  const retouch = (jobId: string, url: string) => {
    setTask('paint');
    setImage({ kind: 'job', jobId, url });
    window.scrollTo({ top: 0, behavior: 'smooth' });
  };

  const running = run !== null && (run.status === 'queued' || run.status === 'running');
  const setNumber = (k: NumberField) => (e: ChangeEvent<HTMLInputElement>) => setNumbers((n) => ({ ...n, [k]: e.target.value }));
  const usesPrompt = task !== 'i2i' || takes === 'prompt';

  if (teams.isPending) return <Loading />;
  return (
    <>
      <header className="page-head">
        <h1>Playground</h1>
        <span className="muted small">submits as the chosen team (X-Dimoo-Team); the audit log records it</span>
      </header>
      <ErrorBox error={teams.error} />
      <div className="grid-play">
        <Card title="Request">
          <form className="play-form" onSubmit={(e) => void submit(e)}>
            <div className="row">
              <label>
                Team
                <select name="team" value={teamId} onChange={(e) => setTeamId(e.target.value)}>
                  <TeamOptions teams={teams.data?.items} />
                </select>
              </label>
              <label>
                Task
                <select name="task" value={task} onChange={(e) => setTask(e.target.value as JobTask)}>
                  {JOB_TASKS.map((t) => (
                    <option key={t} value={t}>
                      {TASK_LABELS[t]}
                    </option>
                  ))}
                </select>
              </label>
              {task === 'i2i' && (
                <label>
                  Edit type
                  <select name="editType" value={editType} onChange={(e) => setEditType(e.target.value as typeof editType)}>
                    {EDIT_TYPES.map((t) => (
                      <option key={t}>{t}</option>
                    ))}
                  </select>
                </label>
              )}
              {task === 'i2i' && takes === 'target' && (
                <label>
                  Target
                  <select name="target" value={target} onChange={(e) => setTarget(e.target.value as typeof target)}>
                    {DENSE_TARGETS.map((t) => (
                      <option key={t}>{t}</option>
                    ))}
                  </select>
                </label>
              )}
              {task === 'i2i' && takes === 'view' && (
                <label>
                  View
                  <select name="view" value={view} onChange={(e) => setView(e.target.value as typeof view)}>
                    {VIEWS.map((v) => (
                      <option key={v}>{v}</option>
                    ))}
                  </select>
                </label>
              )}
            </div>
            {usesPrompt && (
              <label>
                {task === 'mmu' ? 'Question' : task === 'i2i' ? 'Instruction' : 'Prompt'}
                <textarea name="prompt" rows={2} value={prompt} onChange={(e) => setPrompt(e.target.value)} />
              </label>
            )}
            {task !== 't2i' && (
              <ImageInput
                name={task === 'paint' ? 'image-paint' : 'image'}
                label={task === 'i2i' && editType === 'style' ? 'Content image' : 'Image'}
                value={image}
                onChange={setImage}
              />
            )}
            {task === 'i2i' && editType === 'style' && <ImageInput name="style" label="Style image" value={style} onChange={setStyle} />}
            {task === 'paint' && image && <MaskCanvas ref={mask} imageUrl={shown(image)} label="the image to paint on" />}
            <details className="params">
              <summary>Parameters (empty: the model's defaults)</summary>
              <div className="row wrap">
                {(Object.keys(NUMBER_FIELDS) as NumberField[])
                  .filter((k) => (NUMBER_FIELDS[k].tasks as readonly string[]).includes(task))
                  .map((k) => (
                    <label key={k} className="narrow">
                      {NUMBER_FIELDS[k].label}
                      <input name={k} type="number" step={NUMBER_FIELDS[k].step} min={0} value={numbers[k] ?? ''} onChange={setNumber(k)} />
                    </label>
                  ))}
                {task !== 'mmu' && (
                  <label className="narrow">
                    Output format
                    <select name="outputFormat" value={outputFormat} onChange={(e) => setOutputFormat(e.target.value)}>
                      <option value="">default</option>
                      {Object.keys(OUTPUT_FORMATS).map((f) => (
                        <option key={f}>{f}</option>
                      ))}
                    </select>
                  </label>
                )}
                <label className="narrow">
                  Priority
                  <select name="priority" value={priority} onChange={(e) => setPriority(e.target.value)}>
                    <option value="">default</option>
                    {JOB_PRIORITIES.map((p) => (
                      <option key={p}>{p}</option>
                    ))}
                  </select>
                </label>
                <label className="check">
                  <input name="cache" type="checkbox" checked={cache} onChange={(e) => setCache(e.target.checked)} /> ML-Cache
                </label>
              </div>
            </details>
            {issues.length > 0 && (
              <ul className="error issues" role="alert">
                {issues.map((i) => (
                  <li key={i}>{i}</li>
                ))}
              </ul>
            )}
            <ErrorBox error={submitError} />
            <div className="row">
              <button type="submit" className="primary" disabled={!teamId || running}>
                Submit
              </button>
              {running && (
                <button type="button" onClick={() => void session.sdk.cancel(run.jobId).catch((err: unknown) => setSubmitError(err))}>
                  Cancel job
                </button>
              )}
            </div>
          </form>
        </Card>
        <Card title="Run">
          {!run ? (
            <p className="muted">Submit a job to follow it here.</p>
          ) : (
            <div className="run" data-testid="run" data-status={run.status} data-job={run.jobId}>
              <p>
                Job{' '}
                <Link to={`/jobs/${run.jobId}`} className="mono">
                  {shortId(run.jobId)}
                </Link>{' '}
                <StatusBadge status={run.status} />
                {run.finishedMs !== null && <span className="muted small"> in {ms(run.finishedMs)}</span>}
              </p>
              <progress max={run.steps ?? 1} value={run.status === 'succeeded' ? (run.steps ?? 1) : run.step} />{' '}
              <span className="small">
                step {run.step}/{run.steps ?? '?'}
              </span>
              {run.error && <p className="error">{run.error}</p>}
              {run.previews.length > 0 && (
                <div className="strip" data-testid="previews">
                  {run.previews.map((p) => (
                    <figure key={p.step} className="preview">
                      <img src={p.url} alt={`preview at step ${p.step}`} className="preview-img" />
                      <figcaption>step {p.step}</figcaption>
                    </figure>
                  ))}
                </div>
              )}
              {run.text !== null && (
                <p className="answer" data-testid="answer">
                  {run.text}
                </p>
              )}
              {run.images.map((url, i) => (
                <div key={url} className="result">
                  <img src={url} alt={`result ${i + 1}`} className="result-img" data-testid="result-image" />
                  {i === 0 && (
                    <button type="button" onClick={() => retouch(run.jobId, url)}>
                      Retouch this result
                    </button>
                  )}
                </div>
              ))}
            </div>
          )}
        </Card>
      </div>
    </>
  );
}
