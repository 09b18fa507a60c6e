# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Demo: segment your images and look at the codes
#
# A shipped model (`models/camvid-equss`: EQUSS trained on CamVid at proxy scale, the median seed of Table 1; see its `card.md`) segments a folder of images: overlays without and with the dense CRF, with a legend of the classes and the clusters the Hungarian match gave each. Then the **codeword explorer**: every pixel has M product-quantiser indices, one per codebook (its codeword combination, Eq. 8); pick a pixel and see which pixels share its code in at least k of the M codebooks (Eq. 9's distance is M minus that count), the code map of one codebook, and how the shared-code region lines up with the classes. No labels needed: without ground truth the explorer uses the model's own classes. Nothing is trained and nothing is downloaded.

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"          # smoke: the model sees 224 px (seconds, CI) | full: the model's own resolution (448)
images = None            # a folder (or list) of images; default: the first CamVid test images under data_root
data_root = None         # default: $EQUSS_DATA (CamVid test images and their labels)
model = "camvid-equss"   # a shipped model (`equss segment --list-models`) or a model folder
n_images = 2             # how many images to segment
crf = True               # also show the dense CRF's refinement
device = "auto"          # auto | cpu | cuda

# %%
# %matplotlib inline
from equss.paper import demo
items = demo.find_images(images, data_root, n_images, scale)  # smoke without data: the generated set; none: one line
seg = demo.load(model, device)
resolution = 224 if scale == "smoke" else None  # the model sees this shorter side; None: its eval resolution (448)
shorter_side = 224 if scale == "smoke" else None  # smoke: the images themselves downscaled (quick CRF)
print(f"{seg.name}: {len(seg.class_names)} classes; {len(items)} image(s):", ", ".join(i.path.name for i in items))

# %% [markdown]
# ## Segmentations
# Cluster probe, clusters mapped to classes by the shipped model's Hungarian match (legend: each class with its clusters); the last column is the ground truth where the images have one.

# %%
results = demo.segment_all(seg, items, crf=crf, resolution=resolution, shorter_side=shorter_side)
fig = demo.overlay_figure(seg, results)

# %% [markdown]
# ## Codeword explorer
# The first image, resized as the model sees it; one feature cell per 14 x 14 patch. Left to right: the picked pixel, how many of the M codebooks each cell shares with it, the region sharing at least k, and the code map of one codebook. Below, per class: how many codebooks its cells share with the picked one on average, and which classes the shared region is made of. Pixels of one class share many codebooks, pixels of other classes few: the quantised space groups semantics (Fig. 4d).

# %%
first = results[0]
explorer = demo.CodewordExplorer(seg, first["image"], resolution=resolution, truth=first["truth"], classes=first["labels"])
H, W = explorer.size
fig = explorer.figure(y=int(H * 0.8), x=W // 2, k=explorer.M * 3 // 4, codebook=0)

# %% [markdown]
# Move the sliders to pick another pixel, another k or codebook, or compare with the ground truth (where there is one).

# %%
explorer.widget(y=int(H * 0.8), x=W // 2)
