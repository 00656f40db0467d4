"""Reproduction of Wu et al. (ICML 2022), "Characterizing and overcoming the greedy nature of
learning in multi-modal deep neural networks".

Data flow: ``data_prep.<ds>`` -> ``data/<ds>.h5`` -> ``repro.data`` -> ``repro.engine`` (+ ``repro.algorithms``,
``repro.metrics``) -> ``results/<run>/record.json`` -> ``repro.report``.
"""

__version__ = "0.1.0"
