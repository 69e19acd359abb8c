/** Registers every architecture builder by its config class name. */
import { buildAutoencoderKL } from './autoencoder-kl.js';
import { buildCLIPTextModel } from './clip-text.js';
import { buildCLIPVisionModelWithProjection } from './clip-vision.js';
import { buildFluxTransformer2DModel } from './flux-transformer-2d.js';
import { registerArchitecture } from './registry.js';
import { buildSD3Transformer2DModel } from './sd3-transformer-2d.js';
import { buildT5EncoderModel } from './t5-encoder.js';
import { buildUNet2DConditionModel } from './unet-2d-condition.js';

registerArchitecture('UNet2DConditionModel', buildUNet2DConditionModel);
registerArchitecture('AutoencoderKL', buildAutoencoderKL);
registerArchitecture('FluxTransformer2DModel', buildFluxTransformer2DModel);
registerArchitecture('SD3Transformer2DModel', buildSD3Transformer2DModel);
registerArchitecture('CLIPTextModel', buildCLIPTextModel);
registerArchitecture('CLIPTextModelWithProjection', buildCLIPTextModel);
registerArchitecture('CLIPVisionModelWithProjection', buildCLIPVisionModelWithProjection);
registerArchitecture('T5EncoderModel', buildT5EncoderModel);
