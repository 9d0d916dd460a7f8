"""CompressAI's published Kodak results (real bitstreams, mean over the 24 images), copied from
``docs/algorithms.md`` section 5.3 (CompressAI results/image/kodak/*.json). Reference data,
labelled as published in every plot and table: lrcodec does not measure these."""

from lrcodec.families import ZOO_KODAK_BPP

PUBLISHED = {
    "bmshj2018-hyperprior (CompressAI, published)": {
        "bpp": [0.1313, 0.2089, 0.3199, 0.4784, 0.6687, 0.9388, 1.2592, 1.6602],
        "psnr": [27.582, 29.197, 30.972, 32.838, 34.526, 36.743, 38.584, 40.557],
        "ms_ssim": [0.9174, 0.9421, 0.9611, 0.9749, 0.9836, 0.9893, 0.9929, 0.9955],
    },
    "mbt2018-mean (CompressAI, published)": {
        "bpp": list(ZOO_KODAK_BPP),
        "psnr": [27.699, 29.359, 31.129, 32.951, 34.968, 36.911, 38.838, 40.633],
        "ms_ssim": [0.9178, 0.9431, 0.9615, 0.9752, 0.9836, 0.9893, 0.9930, 0.9953],
    },
}
