"""The paper's analyses as sweeps (§5.2, §5.3, §5.4, A.5): named studies, launchers, ``repro sweep``."""
