/**
 * Sign-in: an admin-scoped key typed into a form, checked against an admin route, kept in sessionStorage (this tab
 * only, gone with it) and sent as a bearer header. A key the API refuses later ends the session with the reason.
 */
import type { FormEvent, ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { createContext, useContext, useState } from 'react';
import { errorMessage, Session } from './api';

const STORAGE_KEY = 'dimoo.adminKey';

export const storedKey = () => window.sessionStorage.getItem(STORAGE_KEY);
export const storeKey = (key: string) => window.sessionStorage.setItem(STORAGE_KEY, key);
export const forgetKey = () => window.sessionStorage.removeItem(STORAGE_KEY);

const SessionContext = createContext<{ session: Session; signOut: () => void } | null>(null);

export function SessionProvider({ session, signOut, children }: { session: Session; signOut: () => void; children: ReactNode }) {
  return <SessionContext.Provider value={{ session, signOut }}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const ctx = useContext(SessionContext);
  if (!ctx) throw new Error('useSession outside a signed-in dashboard');
  return ctx.session;
}

/** The teams (`GET /v1/teams`), under the one query key the teams page invalidates after a change. */
export function useTeams() {
  const session = useSession();
  return useQuery({ queryKey: ['teams'], queryFn: () => session.teams() });
}

export function useSignOut(): () => void {
  const ctx = useContext(SessionContext);
  if (!ctx) throw new Error('useSignOut outside a signed-in dashboard');
  return ctx.signOut;
}

export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) return setError('Type an API key with the admin scope.');
    setBusy(true);
    setError(null);
    let refusal: string | null = null;
    try {
      // the audit log is admin-only: 401 for an unknown key, 403 for a key without the admin scope
      await new Session(trimmed, (why) => (refusal = why)).sdk.audit({ limit: 1 });
      onSignedIn(trimmed);
    } catch (err) {
      setError(refusal ?? errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="signin">
      <form className="card signin-card" onSubmit={(e) => void submit(e)}>
        <h1>DiMOO Serve</h1>
        <p className="muted">Admin dashboard. Sign in with an API key that has the admin scope.</p>
        {notice && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        <label>
          Admin API key
          <input
            name="key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={key}
            onChange={(e) => setKey(e.target.value)}
            placeholder="dimoo-admin-…"
            autoFocus
          />
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p className="muted small">The key stays in this tab (sessionStorage) and is sent as a bearer header only.</p>
      </form>
    </div>
  );
}
