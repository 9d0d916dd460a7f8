# Every target uses the virtual environment in .venv/ (made by `make install`).
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: install demo test test-decoder test-web bench bench-quick bench-refine bench-refine-methods bench-schedules bench-surrogates bench-ceiling bench-portability bench-threads bench-photo bench-photo-memory bench-startup bench-decode bench-web fuzz clean

# The page's decoder (web/): its npm packages from the lock file.
WEB_MODULES := web/node_modules/.package-lock.json

install: $(STAMP) $(WEB_MODULES)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench,ray,formats]'
	touch $(STAMP)

$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

demo: $(STAMP)
	$(PY) -m lrcodec.app.demo

test: $(STAMP) $(WEB_MODULES)
	$(PY) -m pytest
	$(MAKE) test-decoder
	$(MAKE) test-web

# The page's decoder in node: every golden file to its pins, and a mutation fuzz (tests/web/, run
# by pytest, drives it in Chromium).
test-web: $(WEB_MODULES)
	cd web && node --test test/*.test.js

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

bench-web: $(STAMP) $(WEB_MODULES)
	$(PY) bench/web.py

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
