/** The admin dashboard: sign-in, then a sidebar of pages over the admin API. */
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { DimooError } from '@dimoo/sdk';
import { lazy, StrictMode, Suspense, useCallback, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Session } from './api';
import { Loading } from './components';
import { Link, match, useLocation } from './router';
import { forgetKey, SessionProvider, SignIn, storedKey, storeKey } from './session';
import './styles.css';

// each page is its own chunk, loaded when first opened: the sign-in screen does not wait for the charts library
const BatchesPage = lazy(() => import('./pages/batches').then((m) => ({ default: m.BatchesPage })));
const JobDetailPage = lazy(() => import('./pages/job-detail').then((m) => ({ default: m.JobDetailPage })));
const JobsPage = lazy(() => import('./pages/jobs').then((m) => ({ default: m.JobsPage })));
const OverviewPage = lazy(() => import('./pages/overview').then((m) => ({ default: m.OverviewPage })));
const PlaygroundPage = lazy(() => import('./pages/playground').then((m) => ({ default: m.PlaygroundPage })));
const QueuesPage = lazy(() => import('./pages/queues').then((m) => ({ default: m.QueuesPage })));
const TeamsPage = lazy(() => import('./pages/teams').then((m) => ({ default: m.TeamsPage })));
const WorkersPage = lazy(() => import('./pages/workers').then((m) => ({ default: m.WorkersPage })));

const queryClient = new QueryClient({
  defaultOptions: {
    // a refused request is an answer, not an outage: retry only what may pass later
    queries: { retry: (n, err) => n < 2 && (!(err instanceof DimooError) || err.transient), refetchOnWindowFocus: false },
  },
});

const PAGES = [
  { path: '/', label: 'Overview' },
  { path: '/jobs', label: 'Jobs' },
  { path: '/batches', label: 'Batches' },
  { path: '/workers', label: 'Workers' },
  { path: '/teams', label: 'Teams and keys' },
  { path: '/queues', label: 'Queues' },
  { path: '/playground', label: 'Playground' },
] as const;

function Page({ path }: { path: string }) {
  const job = match('/jobs/:id', path);
  if (job) return <JobDetailPage id={job['id']!} />;
  switch (path.replace(/\/$/, '') || '/') {
    case '/':
      return <OverviewPage />;
    case '/jobs':
      return <JobsPage />;
    case '/batches':
      return <BatchesPage />;
    case '/workers':
      return <WorkersPage />;
    case '/teams':
      return <TeamsPage />;
    case '/queues':
      return <QueuesPage />;
    case '/playground':
      return <PlaygroundPage />;
    default:
      return (
        <p className="muted">
          No page here. <Link to="/">Overview</Link>
        </p>
      );
  }
}

function Shell({ signOut }: { signOut: () => void }) {
  const { path } = useLocation();
  const current = PAGES.filter((p) => (p.path === '/' ? path === '/' : path.startsWith(p.path))).at(-1);
  return (
    <div className="shell">
      <nav className="sidebar">
        <div className="brand">
          DiMOO Serve <span>admin</span>
        </div>
        <ul>
          {PAGES.map((p) => (
            <li key={p.path}>
              <Link to={p.path} className={current?.path === p.path ? 'active' : undefined} aria-current={current?.path === p.path ? 'page' : undefined}>
                {p.label}
              </Link>
            </li>
          ))}
        </ul>
        <button type="button" className="signout" onClick={signOut}>
          Sign out
        </button>
      </nav>
      <main className="content">
        <Suspense fallback={<Loading />}>
          <Page path={path} />
        </Suspense>
      </main>
    </div>
  );
}

function App() {
  const [key, setKey] = useState<string | null>(storedKey);
  const [notice, setNotice] = useState<string | null>(null);
  const end = useCallback((message: string | null) => {
    forgetKey();
    queryClient.clear();
    setNotice(message);
    setKey(null);
  }, []);
  // a refusal ends this key's session only: a late answer to an earlier session leaves a new one alone
  const session = useMemo(() => (key ? new Session(key, (why) => storedKey() === key && end(why)) : null), [key, end]);
  if (!session) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(k) => {
          storeKey(k);
          setNotice(null);
          setKey(k);
        }}
      />
    );
  }
  const signOut = () => end('Signed out.');
  return (
    <SessionProvider session={session} signOut={signOut}>
      <Shell signOut={signOut} />
    </SessionProvider>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
