import { connectionFields, relabelCatalogColumns } from './migration-adapter';

describe('migration adapter', () => {
  it('relabels catalog columns as text and text[]', () => {
    const result = {
      fields: [
        { name: 'relname', dataTypeID: 19 },
        { name: 'kind', dataTypeID: 18 },
        { name: 'cols', dataTypeID: 1003 },
        { name: 'n', dataTypeID: 23 },
      ],
      rows: [
        ['jobs', 'r', '{id,"team id"}', 1],
        ['x', 'i', null, 2],
      ],
    };
    relabelCatalogColumns(result);
    expect(result.fields.map((f) => f.dataTypeID)).toEqual([25, 25, 1009, 23]);
    expect(result.rows).toEqual([
      ['jobs', 'r', ['id', 'team id'], 1],
      ['x', 'i', null, 2],
    ]);
  });

  it('relabels every result of a multi-statement query', () => {
    const results = [
      { fields: [{ name: 'a', dataTypeID: 2205 }], rows: [{ a: 'jobs' }] },
      { fields: [{ name: 'b', dataTypeID: 1002 }], rows: [{ b: '{r,i}' }] },
    ];
    relabelCatalogColumns(results);
    expect(results[0]!.fields[0]!.dataTypeID).toBe(25);
    expect(results[1]!.rows[0]).toEqual({ b: ['r', 'i'] });
  });

  it('splits a URL into explicit connection fields', () => {
    expect(connectionFields('postgresql://svc:p%40ss@db.internal:6543/dimoo?sslmode=require')).toEqual({
      host: 'db.internal',
      port: 6543,
      user: 'svc',
      password: 'p@ss',
      database: 'dimoo',
      ssl: true,
    });
    expect(connectionFields('postgres://postgres@127.0.0.1/x')).toEqual({
      host: '127.0.0.1',
      port: 5432,
      user: 'postgres',
      password: undefined,
      database: 'x',
    });
    expect(() => connectionFields('mysql://x@y/z')).toThrow(/Not a PostgreSQL URL/);
  });
});
