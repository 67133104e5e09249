/**
 * Teams and keys: the teams (GET /v1/teams), a new team, a team's weight and quotas (PATCH), its keys (issue: the
 * secret shown once; revoke; rotate), usage per day (GET /v1/admin/usage) and the audit log (GET /v1/audit).
 */
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { FormEvent } from 'react';
import { useState } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from 'recharts';
import type { ApiKeyScope } from '@dimoo/contracts';
import { API_KEY_SCOPES, DEFAULT_KEY_SCOPES } from '@dimoo/contracts';
import type { KeyView, Team, TeamShare } from '../api';
import { ChartBox } from '../charts';
import { Card, CopyButton, Dialog, ErrorBox, Loading } from '../components';
import { shortId, time } from '../format';
import { navigate, useLocation } from '../router';
import { useSession, useTeams } from '../session';

const LIMITS = [
  ['maxQueued', 'Max queued'],
  ['maxRunning', 'Max running'],
  ['submitsPerMinute', 'Submits per minute'],
] as const;
const TEAM_COLOURS = ['#2f6fdf', '#2e9d5b', '#c98a1a', '#7d5bbf', '#d64545', '#1f9bb5', '#8b95a7'];

function CreateTeam() {
  const session = useSession();
  const client = useQueryClient();
  const [name, setName] = useState('');
  const create = useMutation({
    mutationFn: () => session.sdk.createTeam(name.trim()),
    onSuccess: async (team) => {
      setName('');
      await Promise.all([client.invalidateQueries({ queryKey: ['teams'] }), client.invalidateQueries({ queryKey: ['audit'] })]);
      navigate(`/teams?team=${team.id}`, { replace: true });
    },
  });
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <input name="teamName" placeholder="new team name" value={name} onChange={(e) => setName(e.target.value)} />
      <button type="submit" disabled={!name.trim() || create.isPending}>
        Create team
      </button>
      <ErrorBox error={create.error} />
    </form>
  );
}

/** Weight and limits; an empty limit field removes the limit (null). */
function ShareForm({ team }: { team: Team }) {
  const session = useSession();
  const client = useQueryClient();
  const initial = () => ({
    weight: String(team.weight),
    ...Object.fromEntries(LIMITS.map(([k]) => [k, team[k] === null ? '' : String(team[k])])),
  });
  const [form, setForm] = useState<Record<string, string>>(initial);
  const save = useMutation({
    mutationFn: () => {
      const share: TeamShare = { weight: Number(form['weight']) };
      for (const [k] of LIMITS) share[k] = form[k]!.trim() === '' ? null : Number(form[k]);
      return session.sdk.updateTeam(team.id, share);
    },
    onSuccess: () => Promise.all([client.invalidateQueries({ queryKey: ['teams'] }), client.invalidateQueries({ queryKey: ['audit'] })]),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form className="share-form" onSubmit={submit}>
      <label>
        Weight
        <input name="weight" type="number" step="any" min={0} value={form['weight']} onChange={(e) => setForm({ ...form, weight: e.target.value })} />
      </label>
      {LIMITS.map(([k, label]) => (
        <label key={k}>
          {label}
          <input name={k} type="number" min={1} placeholder="no limit" value={form[k]} onChange={(e) => setForm({ ...form, [k]: e.target.value })} />
        </label>
      ))}
      <button type="submit" className="primary" disabled={save.isPending}>
        Save
      </button>
      {save.isSuccess && <span className="muted small">saved</span>}
      <ErrorBox error={save.error} />
    </form>
  );
}

type Secret = { title: string; key: string; note: string };

function Keys({ team }: { team: Team }) {
  const session = useSession();
  const client = useQueryClient();
  const keys = useQuery({ queryKey: ['keys', team.id], queryFn: () => session.sdk.listKeys(team.id) });
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<ApiKeyScope[]>([...DEFAULT_KEY_SCOPES]);
  const [secret, setSecret] = useState<Secret | null>(null);
  const [confirmRevoke, setConfirmRevoke] = useState<string | null>(null);
  const [rotating, setRotating] = useState<KeyView | null>(null);
  const [grace, setGrace] = useState('0');
  // a key change is also an audit entry
  const refresh = () => Promise.all([client.invalidateQueries({ queryKey: ['keys', team.id] }), client.invalidateQueries({ queryKey: ['audit'] })]);

  const issue = useMutation({
    mutationFn: () => session.sdk.createKey(team.id, { name: name.trim(), scopes }),
    onSuccess: async (k) => {
      setName('');
      setSecret({ title: `Key for ${team.name}`, key: k.key, note: `scopes ${k.scopes.join(', ')}` });
      await refresh();
    },
  });
  const revoke = useMutation({
    mutationFn: (keyId: string) => session.sdk.revokeKey(team.id, keyId),
    onSuccess: async () => {
      setConfirmRevoke(null);
      await refresh();
    },
  });
  const rotate = useMutation({
    mutationFn: (k: KeyView) => session.sdk.rotateKey(team.id, k.id, Number(grace) || 0),
    onSuccess: async (r, k) => {
      setRotating(null);
      const graceS = Number(grace) || 0;
      setSecret({ title: `Key ${k.name} rotated`, key: r.key, note: graceS > 0 ? `the old key works ${graceS} s more` : 'the old key is refused from now on' });
      await refresh();
    },
  });

  return (
    <>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          issue.mutate();
        }}
      >
        <input name="keyName" placeholder="key name (e.g. ci)" value={name} onChange={(e) => setName(e.target.value)} />
        {API_KEY_SCOPES.map((s) => (
          <label key={s} className="check">
            <input
              type="checkbox"
              name={`scope-${s}`}
              checked={scopes.includes(s)}
              onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
            />
            {s}
          </label>
        ))}
        <button type="submit" className="primary" disabled={!name.trim() || scopes.length === 0 || issue.isPending}>
          Issue key
        </button>
      </form>
      <ErrorBox error={issue.error ?? revoke.error ?? rotate.error ?? keys.error} />
      {keys.isPending ? (
        <Loading />
      ) : (
        <table className="table" data-testid="keys-table">
          <thead>
            <tr>
              <th>Key</th>
              <th>Scopes</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.data?.data.map((k) => {
              const state = k.revokedAt ? `revoked ${time(k.revokedAt)}` : k.expiresAt ? `expires ${time(k.expiresAt)}` : 'active';
              return (
                <tr key={k.id} data-key-prefix={k.prefix} className={k.revokedAt ? 'revoked' : undefined}>
                  <td>
                    {k.name}
                    <div className="mono small muted">{k.prefix}…</div>
                  </td>
                  <td>{k.scopes.join(', ')}</td>
                  <td className="small">
                    {state}
                    <div className="muted">created {time(k.createdAt)}</div>
                  </td>
                  <td>
                    <div className="row-actions">
                      {!k.revokedAt && (
                        <>
                          <button type="button" onClick={() => setRotating(k)}>
                            Rotate
                          </button>
                          {confirmRevoke === k.id ? (
                            <>
                              <button type="button" className="danger" onClick={() => revoke.mutate(k.id)} disabled={revoke.isPending}>
                                Confirm revoke
                              </button>
                              <button type="button" onClick={() => setConfirmRevoke(null)}>
                                Keep
                              </button>
                            </>
                          ) : (
                            <button type="button" className="danger" onClick={() => setConfirmRevoke(k.id)}>
                              Revoke
                            </button>
                          )}
                        </>
                      )}
                    </div>
                  </td>
                </tr>
              );
            })}
            {keys.data?.data.length === 0 && (
              <tr>
                <td colSpan={4} className="muted">
                  No key yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {rotating && (
        <Dialog title={`Rotate key ${rotating.name}`} onClose={() => setRotating(null)}>
          <p>A new key replaces {rotating.prefix}…; the old one keeps working for the grace period.</p>
          <label>
            Grace (seconds)
            <input name="grace" type="number" min={0} value={grace} onChange={(e) => setGrace(e.target.value)} />
          </label>
          <button type="button" className="primary" onClick={() => rotate.mutate(rotating)} disabled={rotate.isPending}>
            Rotate
          </button>
        </Dialog>
      )}
      {secret && (
        <Dialog title={secret.title} onClose={() => setSecret(null)}>
          <p>
            Store this key now: <strong>it is shown once</strong> and cannot be read again ({secret.note}).
          </p>
          <div className="secret">
            <code data-testid="secret">{secret.key}</code>
            <CopyButton text={secret.key} />
          </div>
        </Dialog>
      )}
    </>
  );
}

function Usage() {
  const session = useSession();
  const usage = useQuery({ queryKey: ['usage', 14], queryFn: () => session.usage(14) });
  if (usage.isPending) return <Loading />;
  if (usage.isError) return <ErrorBox error={usage.error} />;
  const items = usage.data.items;
  const teams = [...new Set(items.map((u) => u.teamName))];
  const days = [...new Set(items.map((u) => u.day))].sort();
  const chart = days.map((day) => ({ day: day.slice(5), ...Object.fromEntries(items.filter((u) => u.day === day).map((u) => [u.teamName, u.jobs])) }));
  return (
    <div className="grid2">
      <ChartBox title="Jobs per day by team (14 days)" height={200} empty={chart.length === 0}>
        <BarChart data={chart}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} />
          <XAxis dataKey="day" />
          <YAxis allowDecimals={false} width={36} />
          <Tooltip />
          <Legend />
          {teams.map((t, i) => (
            <Bar key={t} maxBarSize={56} dataKey={t} stackId="u" fill={TEAM_COLOURS[i % TEAM_COLOURS.length]} isAnimationActive={false} />
          ))}
        </BarChart>
      </ChartBox>
      <table className="table compact" data-testid="usage-table">
        <thead>
          <tr>
            <th>Day</th>
            <th>Team</th>
            <th className="num">Jobs</th>
            <th className="num">Images</th>
            <th className="num">Compute (s)</th>
          </tr>
        </thead>
        <tbody>
          {items.map((u) => (
            <tr key={`${u.day}-${u.teamId}`}>
              <td>{u.day}</td>
              <td>{u.teamName}</td>
              <td className="num">{u.jobs}</td>
              <td className="num">{u.images}</td>
              <td className="num">{u.computeSeconds.toFixed(1)}</td>
            </tr>
          ))}
          {items.length === 0 && (
            <tr>
              <td colSpan={5} className="muted">
                No job in the last 14 days.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** An audit entry's details as `key: value` pairs (ids cut to their first 8 characters, like everywhere here). */
const detailsText = (d: Record<string, unknown>) =>
  Object.entries(d)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? (UUID.test(v) ? shortId(v) : v) : JSON.stringify(v)}`)
    .join(', ');

function Audit() {
  const session = useSession();
  const audit = useInfiniteQuery({
    queryKey: ['audit'],
    queryFn: ({ pageParam }) => session.sdk.audit({ limit: 20, ...(pageParam ? { before: pageParam } : {}) }),
    initialPageParam: '',
    getNextPageParam: (page) => (page.hasMore && page.data.length > 0 ? page.data.at(-1)!.id : undefined),
  });
  if (audit.isPending) return <Loading />;
  if (audit.isError) return <ErrorBox error={audit.error} />;
  const entries = audit.data.pages.flatMap((p) => p.data);
  return (
    <>
      <table className="table compact" data-testid="audit-table">
        <thead>
          <tr>
            <th>When</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Target</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.id}>
              <td className="nowrap">{time(e.at)}</td>
              <td className="mono">{e.actor}</td>
              <td>{e.action}</td>
              <td className="mono small">
                {e.target.type} {shortId(e.target.id)}
              </td>
              <td className="mono small details">{e.details ? detailsText(e.details) : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {audit.hasNextPage && (
        <button type="button" onClick={() => void audit.fetchNextPage()} disabled={audit.isFetchingNextPage}>
          Load more
        </button>
      )}
    </>
  );
}

export function TeamsPage() {
  const { query } = useLocation();
  const teams = useTeams();
  const selectedId = query.get('team');
  const selected = teams.data?.items.find((t) => t.id === selectedId) ?? null;
  return (
    <>
      <header className="page-head">
        <h1>Teams and keys</h1>
      </header>
      <div className="grid-teams">
        <Card title="Teams">
          <CreateTeam />
          {teams.isPending ? (
            <Loading />
          ) : teams.isError ? (
            <ErrorBox error={teams.error} />
          ) : (
            <table className="table" data-testid="teams-table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th className="num">Weight</th>
                  <th className="num">Queued / running / per min</th>
                </tr>
              </thead>
              <tbody>
                {teams.data.items.map((t) => (
                  <tr
                    key={t.id}
                    className={`clickable ${t.id === selectedId ? 'selected' : ''}`}
                    onClick={() => navigate(`/teams?team=${t.id}`, { replace: true })}
                    data-team={t.name}
                  >
                    <td>{t.name}</td>
                    <td className="num">{t.weight}</td>
                    <td className="num">
                      {t.maxQueued ?? '∞'} / {t.maxRunning ?? '∞'} / {t.submitsPerMinute ?? '∞'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Card>
        <Card title={selected ? `Team ${selected.name}` : 'Team'}>
          {selected ? (
            <>
              <p className="muted small mono">{selected.id}</p>
              <h3>Weight and quotas</h3>
              <ShareForm key={selected.id} team={selected} />
              <h3>Keys</h3>
              <Keys key={`keys-${selected.id}`} team={selected} />
            </>
          ) : (
            <p className="muted">Pick a team to set its share and manage its keys.</p>
          )}
        </Card>
      </div>
      <Card title="Usage per day">
        <Usage />
      </Card>
      <Card title="Audit log">
        <Audit />
      </Card>
    </>
  );
}
