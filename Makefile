# The two README commands. Each does its own set-up on a fresh machine: a virtualenv in
# .venv, the package and its dev tools, and the Fashion-MNIST files.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST_DEBIAN := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test lint data ui notebook bench clean lock

# Installs are pinned by the lock file (LOCK=, empty, installs unpinned: for a Python other
# than 3.11, which the lock was made on); `make lock` regenerates it in a throwaway venv.
LOCK ?= constraints.txt
PIN := $(if $(LOCK),-c $(LOCK))

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIN) -e '.[dev]'
	touch $(STAMP)

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

# Debian's package where apt is there and we are root; otherwise torchvision's download.
data: $(STAMP)
	@if [ ! -f $(FMNIST_DEBIAN) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist); \
	fi
	$(PY) -m trainables.data fashion_mnist

# tests/test_study_storage.py starts a real Postgres server: Debian's, where apt is there and we are root.
test: data
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q postgresql || (apt-get update -q && apt-get install -y -q postgresql); \
	fi
	$(PY) -m ruff check .
	$(PY) -m pytest -q --durations=15

# The quickstart at demo size: 4 trials on a 1,000-image train slice (100 of them held out for
# validation) and 500 test images, 7 minutes on 2 CPU cores here, attackers converged. Its
# defenses do not converge, and the front says so (orange squares on pareto.png, "cap hit:
# undertrained" in summary.md): at 8 batches an epoch the convergence rule's window is 45
# epochs (it holds train.window_steps, 360 steps; trainables/convergence.py), so a phase needs
# 90 epochs before the rule can stop it, over the cap of 60. Converged defenses need the
# spec's slice (10,000 images: 71 batches an epoch, a 10-epoch window; hours here for 12 trials).
# The white-box attacker inverts 64 test images (default 256: a wider interval) at 800 steps
# (default 1600, what Privacy Partitioning's release needs; on Noisy ARL's noise 800 came within
# .015 SSIM of 3200). Its own experiment, so its points never mix with the full quickstart's on
# one front.
DEMO_SIZE ?= --num-samples 4 --set dataset.train_size=1000 --set dataset.test_size=500 --set attacks.whitebox.images=64 --set attacks.whitebox.selection_images=32 --set attacks.whitebox.steps=800
# The launcher ends by writing the front report to out/quickstart_demo/ (and to MLflow).
demo: data
	$(PY) -m sweeps run sweeps/quickstart.yaml $(DEMO_SIZE) --set tracking.experiment=quickstart_demo

ui: $(STAMP)
	$(PY) -m sweeps ui

# JupyterLab (the `notebook` extra, installed on first use) on the loopback interface only,
# opened on the Pareto notebook, reading the same local store as `make ui`.
NOTEBOOK_PORT ?= 8888
notebook: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install --quiet $(PIN) -e '.[notebook]'
	$(PY) -m jupyter lab --ip 127.0.0.1 --port $(NOTEBOOK_PORT) $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/pareto_fronts.ipynb

bench: data
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) out
