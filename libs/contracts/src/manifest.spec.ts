import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ManifestSchema, RESIDENT_CACHE_GRAPHS, SYS_PROMPTS } from './manifest';

const tiny = JSON.parse(readFileSync(resolve(__dirname, '../../../models/tiny/manifest.json'), 'utf8')) as Record<string, unknown>;

const issues = (m: unknown) => {
  const r = ManifestSchema.safeParse(m);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('ManifestSchema', () => {
  it('accepts the committed tiny model manifest', () => {
    expect(issues(tiny)).toEqual([]);
  });

  it('names the field and the reason when ids are inconsistent', () => {
    const tokens = tiny['tokens'] as Record<string, number>;
    expect(issues({ ...tiny, tokens: { ...tokens, eoa: tokens['boa'] } })).toContain('tokens.eoa: same id as boa');
    expect(issues({ ...tiny, tokens: { ...tokens, codeOffset: tokens['codeOffset']! + 1 } })).toEqual(
      expect.arrayContaining(['tokens.codeOffset: codeOffset + codebookSize must equal architecture.vocabSize']),
    );
  });

  it('requires a system prompt for every task and image-to-image kind (a new editType needs one in every manifest)', () => {
    const templates = tiny['templates'] as { sys: Record<string, string> };
    expect(Object.keys(templates.sys).sort()).toEqual([...SYS_PROMPTS].sort());
    const { dense: _d, multiView: _m, ...before } = templates.sys;
    expect(issues({ ...tiny, templates: { ...templates, sys: before } }).map((i) => i.split(':')[0])).toEqual([
      'templates.sys.dense',
      'templates.sys.multiView',
    ]);
  });

  it('requires a checksum for every graph and plain file names', () => {
    const graphs = tiny['graphs'] as Record<string, string>;
    expect(issues({ ...tiny, graphs: { ...graphs, denoise: 'other.onnx' } })).toContain('graphs.denoise: other.onnx has no checksum in files');
    expect(issues({ ...tiny, graphs: { ...graphs, denoise: '../escape.onnx' } })[0]).toMatch(/^graphs.denoise: /);
  });

  it('takes the GPU path graph as optional, with its unroll length', () => {
    const { denoise_segment: segment, ...cpuOnly } = tiny['graphs'] as Record<string, string>;
    expect(segment).toBe('denoise_segment.onnx');
    const { segmentSteps, ...rest } = tiny;
    expect(segmentSteps).toBe(5);
    expect(issues({ ...rest, graphs: cpuOnly })).toEqual([]);
    expect(issues({ ...rest, graphs: tiny['graphs'] })).toContain('segmentSteps: graphs.denoise_segment and segmentSteps come together');
    expect(issues({ ...tiny, graphs: cpuOnly })).toContain('segmentSteps: graphs.denoise_segment and segmentSteps come together');
    expect(issues({ ...tiny, segmentSteps: 0 })[0]).toMatch(/^segmentSteps: /);
  });

  it('takes the device-resident ML-Cache graphs as optional, all five or none', () => {
    const graphs = tiny['graphs'] as Record<string, string>;
    const withoutResident = Object.fromEntries(Object.entries(graphs).filter(([g]) => !(RESIDENT_CACHE_GRAPHS as readonly string[]).includes(g)));
    expect(RESIDENT_CACHE_GRAPHS.every((g) => g in graphs)).toBe(true);
    expect(issues({ ...tiny, graphs: withoutResident })).toEqual([]);
    const together = `graphs: ${RESIDENT_CACHE_GRAPHS.join(', ')} come together`;
    for (const left of RESIDENT_CACHE_GRAPHS) {
      const { [left]: _left, ...partly } = graphs;
      expect(issues({ ...tiny, graphs: partly })).toContain(together);
    }
  });

  it('requires checksums for the tokenizer files (an hf tokenizer may ship tokenizer_config.json)', () => {
    const tokenizer = tiny['tokenizer'] as Record<string, unknown>;
    expect(issues({ ...tiny, tokenizer: { ...tokenizer, kind: 'hf', config: 'tokenizer_config.json' } })).toContain(
      'tokenizer.config: tokenizer_config.json has no checksum in files',
    );
    expect(issues({ ...tiny, tokenizer: { ...tokenizer, specialTokens: { '<|mdm_mask|>': 68 } } })).toEqual([]);
    expect(issues({ ...tiny, tokenizer: { ...tokenizer, specialTokens: { '<|mdm_mask|>': -1 } } })[0]).toMatch(/^tokenizer.specialTokens/);
  });

  it('rejects an unknown interface version', () => {
    expect(issues({ ...tiny, interfaceVersion: 1 })[0]).toMatch(/^interfaceVersion/);
  });
});
