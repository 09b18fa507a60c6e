"""What the reproduction notebooks call (``from equss import paper as ex``).

| module | what |
|---|---|
| :mod:`~equss.paper.runs` | presets per scale, the run cache (train + evaluate a config once) |
| :mod:`~equss.paper.tables` | table rows, CSV / Markdown / provenance files |
| :mod:`~equss.paper.figures` | data for Fig. 4 (codes) and Fig. 5 (predictions), colouring |
| :mod:`~equss.paper.quoted` | the paper's numbers, marked quoted |
| :mod:`~equss.paper.notebooks` | the papermill runner behind ``make reproduce-*`` |
"""
from equss.paper.figures import collect_codes, colorize, predictions
from equss.paper.runs import baseline, config, preset_for, results_dir, run, run_dir
from equss.paper.tables import row, save_provenance, save_table, show

__all__ = ["baseline", "collect_codes", "colorize", "config", "predictions", "preset_for", "results_dir",
           "row", "run", "run_dir", "save_provenance", "save_table", "show"]
