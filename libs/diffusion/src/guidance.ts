/**
 * Classifier-free guidance, the one place it is defined. The graphs combine branch logits as Σ_g w_g · logits_g with
 * these weights (docs/model-interface.md §3):
 * - text-to-image and understanding: (1 + w)·cond − w·uncond
 * - image-to-image (dual): c + a·(c − u_text) + b·(c − u_img) = (1 + a + b)·c − a·u_text − b·u_img
 */

export type Guidance = { kind: 'none' } | { kind: 'text'; scale: number } | { kind: 'dual'; text: number; image: number };

export function guidanceWeights(g: Guidance): number[] {
  switch (g.kind) {
    case 'none':
      return [1];
    case 'text':
      return [1 + g.scale, -g.scale];
    case 'dual':
      return [1 + g.text + g.image, -g.text, -g.image];
  }
}

/** Guidance that contributes nothing is dropped, so an unguided job runs one row instead of G. */
export function effectiveGuidance(g: Guidance): Guidance {
  switch (g.kind) {
    case 'none':
      return g;
    case 'text':
      return g.scale === 0 ? { kind: 'none' } : g;
    case 'dual':
      return g.text === 0 && g.image === 0 ? { kind: 'none' } : g;
  }
}

export function branchCount(g: Guidance): number {
  return guidanceWeights(g).length;
}
