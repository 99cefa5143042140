"""report.py's tables and figures, cut by concern (reporting/README.md):

- `records`: reading results.jsonl, every field checked (`fields`: each field's range and number format);
- `files`: the per-sample files, read only from under the results root and checked; `context`: the `Report`
  every builder gets;
- `predicates`: what kind of record a row is; `tables`: the tables' maths; `markdown`: writing them;
- `plotting`: panels of series on matplotlib's layout; `palette`: the styles that tell series apart;
- one module per system: `paper` (the artifact's paper), `references` (LiRA / RMIA), `wemem`, `nas`;
- `index`: the builders in index order (BUILDERS), index.md and `build_report`.
"""
from reporting.index import BUILDERS, Build, build_report

__all__ = ["BUILDERS", "Build", "build_report"]
