# Convenience wrappers around ./course (which does all of its own set-up).
.PHONY: setup lab test unit notebooks browser bench clean
setup:      ; ./course setup
lab:        ; ./course lab
test:       ; ./course test
unit:       ; ./course test tests -m "not browser" --ignore=notebooks
notebooks:  ; ./course test notebooks
browser:    ; ./course test tests/test_browser.py
bench: setup; .venv/bin/python -m course_utils bench
clean:      ; rm -rf runs .pytest_cache tests/artifacts
