"""Reports built from run records alone, in layers: a module imports only from the layers below it.

- ``table1`` (Table 1, text), ``conjectures`` (``conjectures.md``, text), ``histograms`` (d_util/d_speed figures of
  finished runs), ``studies`` (figures and ``index.md`` per sweep study);
- ``protocol``: the protocol study's table and figure (for ``studies``);
- ``plotting`` (the Agg back end, the shared histogram panel, ``save_figure``) and ``sweep_rows`` (the sweeps'
  manifests and rows, no matplotlib).

The text reports never import ``plotting``, so they need no matplotlib. Which report a results folder gets is the
command's choice (:mod:`repro.cli.report`).
"""
