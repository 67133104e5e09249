/** Small pieces every page uses: cards, counters, badges, errors, a dialog, and images fetched with the key. */
import type { ReactNode } from 'react';
import { useEffect, useRef, useState } from 'react';
import type { Session } from './api';
import { errorMessage } from './api';
import { useSession } from './session';

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card ${className ?? ''}`}>
      {(title || actions) && (
        <header className="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div className="actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

export function Stat({ label, value, hint, tone, id }: { label: string; value: ReactNode; hint?: ReactNode; tone?: 'bad' | 'warn' | 'good'; id?: string }) {
  return (
    <div className={`stat ${tone ?? ''}`} data-stat={id}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {hint !== undefined && <div className="stat-hint">{hint}</div>}
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {errorMessage(error)}
    </p>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return <p className="muted">{what}…</p>;
}

export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div className="overlay" onClick={onClose}>
      <div className="dialog card" role="dialog" aria-modal="true" aria-label={title} onClick={(e) => e.stopPropagation()}>
        <header className="card-head">
          <h2>{title}</h2>
        </header>
        {children}
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </div>
  );
}

export function CopyButton({ text }: { text: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(text);
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <button type="button" onClick={() => void copy().catch(() => setCopied(false))}>
      {copied ? 'Copied' : 'Copy'}
    </button>
  );
}

/**
 * An image the API holds (a preview, a result), fetched with the bearer header and shown from an object URL: the key
 * never goes into an <img src>. `load` makes the object URL (Session.previewUrl, resultUrl); `source` names the image
 * (a new source loads again).
 */
export function ApiImage({ source, load, alt, className }: { source: string; load: (s: Session) => Promise<string>; alt: string; className?: string }) {
  const session = useSession();
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    let made: string | null = null;
    let live = true;
    loader
      .current(session)
      .then((u) => {
        made = u;
        if (live) setUrl(u);
        else URL.revokeObjectURL(u);
      })
      .catch((err: unknown) => live && setError(err));
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [session, source]);
  if (error) return <ErrorBox error={error} />;
  if (!url) return <div className={`img-placeholder ${className ?? ''}`} />;
  return <img src={url} alt={alt} className={className} />;
}

/** A key/value list. */
export function Facts({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="facts">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A `<select>`'s options, one per team (value: its id). */
export function TeamOptions({ teams }: { teams: readonly { id: string; name: string }[] | undefined }) {
  return (
    <>
      {teams?.map((t) => (
        <option key={t.id} value={t.id}>
          {t.name}
        </option>
      ))}
    </>
  );
}
