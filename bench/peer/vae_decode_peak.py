# Peak RSS of diffusers' own AutoencoderKL decode at 1024x1024 in float32, with FLUX.1's VAE
# config (random weights: memory does not depend on them), for issue 17's question of what an exact
# decode needs at that size. Run with the Python of "Setting up a Python for it" below:
#   python bench/peer/vae_decode_peak.py
import resource, os, torch, time
from diffusers import AutoencoderKL
torch.manual_seed(0)
torch.set_num_threads(2)
vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
    down_block_types=('DownEncoderBlock2D',) * 4, up_block_types=('UpDecoderBlock2D',) * 4, layers_per_block=2,
    norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False).eval()
del vae.encoder
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
z = torch.randn(1, 16, 128, 128)
before = rss()
t = time.time()
with torch.no_grad():
    img = vae.decode(z).sample
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f'diffusers Flux-VAE decode 1024x1024 fp32: rss before {before:.2f} GiB, peak {peak:.2f} GiB, +{peak - before:.2f} GiB, {time.time() - t:.0f} s, out {tuple(img.shape)}')
