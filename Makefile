# Every target uses the virtual environment in .venv/ (made by `make install`).
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: install demo test test-decoder bench bench-quick bench-refine bench-refine-methods bench-schedules bench-surrogates bench-ceiling bench-portability bench-threads bench-photo bench-photo-memory bench-startup bench-decode fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench,ray,formats]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lrcodec.app.demo

test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) test-decoder

bench: $(STAMP)
	$(PY) bench/run.py --update-cards

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

fuzz: $(STAMP)
	LRCODEC_FUZZ_EXAMPLES=5000 $(PY) -m pytest tests/test_robustness.py -k mutated -p no:cacheprovider

clean:
	rm -rf out/ .pytest_cache

bench-refine: $(STAMP)
	$(PY) bench/refine.py

bench-refine-methods: $(STAMP)
	$(PY) bench/refine_methods.py

bench-schedules: $(STAMP)
	$(PY) bench/schedules.py

bench-surrogates: $(STAMP)
	$(PY) bench/surrogates.py

bench-ceiling: $(STAMP)
	$(PY) bench/ceiling.py

bench-portability: $(STAMP)
	$(PY) bench/portability.py

bench-threads: $(STAMP)
	$(PY) bench/threads.py

bench-photo: $(STAMP)
	$(PY) bench/photo.py

bench-photo-memory: $(STAMP)
	$(PY) bench/photo_memory.py

bench-decode: $(STAMP)
	$(PY) bench/decode.py

bench-startup: $(STAMP)
	$(PY) bench/startup.py

# The decode-only distribution (scripts/build_decoder.py) in a fresh environment of its own:
# it must decode every golden file to its pins without torch, and plain-encode and decode an
# image. `make test` runs it.
DECODER := build/decoder
test-decoder: $(STAMP)
	rm -rf $(DECODER)
	$(PY) scripts/build_decoder.py $(DECODER)/dist
	python3 -m venv $(DECODER)/venv
	$(DECODER)/venv/bin/python -m pip install -q -c constraints.txt $(DECODER)/dist/lrcodec_decode-*.whl
	cd $(DECODER) && venv/bin/python ../../scripts/check_golden.py ../../tests/golden --no-torch
	cd $(DECODER) && venv/bin/lrcodec encode ../../tests/golden/lrc-mshp-q3-plain.lrc.png -e 0 -o plain.lrc \
		&& venv/bin/lrcodec decode plain.lrc -o plain.png
