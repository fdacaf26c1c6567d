# The few verbs a newcomer needs. Every target installs what it needs first.
PY := .venv/bin/python
EXAMPLE := examples/conversation.mp3

.PHONY: setup demo test lint format schema weights bench evaluate

setup:            ## ffmpeg + .venv with the pinned requirements (idempotent)
	bash scripts/setup.sh

demo: setup       ## diarize the example recording into output.json
	$(PY) -m diarization $(EXAMPLE) -o output.json
	@head -c 600 output.json; echo " ..."

test: setup       ## the whole test suite (CPU, no downloaded weights)
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

schema: setup     ## .cog/openapi_schema.json from predict.py (for the Cog server without Docker)
	$(PY) scripts/openapi_schema.py

weights: setup    ## fetch the real weights (needs HF_TOKEN; see weights/README.md)
	$(PY) scripts/download_weights.py

bench: setup      ## stock pyannote vs this project, side by side (prints figures)
	$(PY) scripts/benchmark.py --minutes 1 --cold-start

evaluate: setup   ## DER / JER / speaker count on ../shared/data
	$(PY) -m diarization.evaluate ../shared/data/real ../shared/data/sim --pipeline bundled
