/**
 * LatentConsistencyModelPipeline (LCM-distilled Stable Diffusion UNets, e.g.
 * SimianLuo/LCM_Dreamshaper_v7), following diffusers 0.30's pipeline_latent_consistency_text2img.py:
 * no classifier-free guidance; the guidance scale w enters the UNet as `timestep_cond`, the
 * embedding of w − 1 (get_guidance_scale_embedding); the LCM scheduler; 4 steps and w = 8.5 by
 * default. StableDiffusionPipeline already drives a UNet with `time_cond_proj_dim` this way; this
 * class is the model_index.json name and its defaults.
 */
import type { Session } from '../runtime/session.js';
import type { LoadedComponents, PipelineDescription } from './description.js';
import type { PipelineSource, SchedulerSpec } from './pipeline.js';
import { StableDiffusionPipeline } from './stable-diffusion.js';

export class LatentConsistencyModelPipeline extends StableDiffusionPipeline {
  static override readonly description: PipelineDescription<LatentConsistencyModelPipeline> = {
    ...StableDiffusionPipeline.description,
    className: 'LatentConsistencyModelPipeline',
    components: StableDiffusionPipeline.description.components.map((c) =>
      c.role === 'denoiser' ? { ...c, inputs: [...c.inputs, 'timestep_cond'], optionalInputs: [] } : c,
    ),
    create: (source, scheduler, c, sessions, onWarning) => new LatentConsistencyModelPipeline(source, scheduler, c, sessions, onWarning),
  };

  override readonly className: string = 'LatentConsistencyModelPipeline';
  protected override defaultSteps = 4;
  protected override defaultGuidance = 8.5;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: LoadedComponents, sessions: Session[], onWarning: (m: string) => void) {
    super(source, scheduler, c, sessions, onWarning);
  }
}
