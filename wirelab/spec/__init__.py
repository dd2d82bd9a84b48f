"""What an experiment module declares: parameters, metrics and their bands, the trial
context.  ``from wirelab.spec import Param, Choice, Metric, Tolerance, REPORTED``."""
from wirelab.spec.bands import Tolerance
from wirelab.spec.context import TrialContext
from wirelab.spec.metrics import REPORTED, Metric
from wirelab.spec.params import Choice, Param

__all__ = ["Choice", "Metric", "Param", "REPORTED", "Tolerance", "TrialContext"]
