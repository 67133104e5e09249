/**
 * The prompts of an image-to-image job (spec §1.2): the system prompt is the manifest's one of the job's editType; the
 * user prompt is the request's, except for the kinds whose user sentence is the model's own (style, dense, multiView).
 */
import type { DenseTarget, ModelManifest, ResolvedJob } from '@dimoo/contracts';
import { InvalidSamplingRequest } from '@dimoo/diffusion';

/** What the model calls each dense-prediction target in its user sentence (spec §1.2); segmentation is SAM2's mask. */
export const DENSE_TARGET_PHRASES: Readonly<Record<DenseTarget, string>> = {
  canny: 'canny edge map',
  hed: 'hed edge map',
  depth: 'depth map',
  normal: 'normal map',
  pose: 'pose estimation map',
  segmentation: 'sam2 mask',
};

export type I2iJob = Extract<ResolvedJob, { task: 'i2i' }>;

/**
 * `tok(SYS, USER)`'s two strings for an image-to-image job.
 *
 * Routing differs from the reference on purpose for dense prediction: the reference picks the system prompt by
 * substring of its edit type (dense → control → subject → edit → ref_transfer → multi_view → fallback), so its
 * dense-prediction types `canny_pred`, `hed_pred`, `depth_pred` and `openpose_pred`, which contain no "dense", get the
 * fallback `Generate an image according to the prompt and image.` with the prompt as given (spec §1.2, §9 item 6).
 * editType `dense` here always gets the dense system prompt and the dense user sentence the reference's prompt helper
 * defines for the task.
 */
export function editPrompts(sys: ModelManifest['templates']['sys'], job: I2iJob): { system: string; user: string } {
  const system = sys[job.editType];
  switch (job.editType) {
    case 'style':
      // the reference replaces the user prompt with the system sentence itself
      return { system, user: sys.style };
    case 'dense':
      return { system, user: `Generate a ${DENSE_TARGET_PHRASES[need(job, 'target')]} according to the image.` };
    case 'multiView':
      return { system, user: `Generate the ${need(job, 'view')} view based on the provided front view.` };
    case 'edit':
    case 'subject':
    case 'control':
      return { system, user: need(job, 'prompt') };
  }
}

/** A field the job's editType takes; resolveJob and the stored job's schema guarantee it, this only names it if not. */
function need<F extends 'prompt' | 'target' | 'view'>(job: I2iJob, field: F): NonNullable<I2iJob[F]> {
  const value = job[field];
  if (value === undefined) throw new InvalidSamplingRequest(field, `is required for editType ${job.editType}`);
  return value;
}
