# Convenience wrappers around ./course (which does all of its own set-up).
# `make clean` deletes only caches and asks before deleting runs/ (resumable training runs);
# `make clean-runs` deletes runs/ after asking, `make clean-runs FORCE=1` without asking.
.PHONY: setup lab test fast unit notebooks browser bench clean clean-runs
setup:      ; ./course setup
lab:        ; ./course lab
test:       ; ./course test
fast:       ; ./course test --fast
unit:       ; ./course test tests -m "not browser" --ignore=notebooks
notebooks:  ; ./course test notebooks
browser:    ; ./course test tests/test_browser.py
bench: setup; .venv/bin/python -m course_utils bench
clean:      ; ./course clean
clean-runs: ; ./course clean-runs $(if $(filter-out 0 no false,$(FORCE)),--force)
