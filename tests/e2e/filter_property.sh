#!/bin/bash
# Property test: syncmgr --include/--exclude select exactly what rsync -r
# selects (SPEC.md section 3).  See filter_property.py for the options.
#
#   SYNCMGR=/path/to/syncmgr bash tests/e2e/filter_property.sh [--seed S] [--cases N]
exec /usr/bin/python3 "$(dirname "$0")/filter_property.py" "$@"
