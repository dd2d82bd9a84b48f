"""What an experiment module declares: parameters, metrics and their bands, its figure,
the trial context.  ``from wirelab.spec import Param, Choice, Metric, Tolerance, REPORTED,
Bars``."""
from wirelab.spec.bands import Tolerance
from wirelab.spec.context import TrialContext
from wirelab.spec.figure import Bars, Rounds, Schedule, Sweep, Timeline, Waterfall
from wirelab.spec.metrics import REPORTED, Metric
from wirelab.spec.params import Choice, Param

__all__ = ["Bars", "Choice", "Metric", "Param", "REPORTED", "Rounds", "Schedule", "Sweep",
           "Timeline", "Tolerance", "TrialContext", "Waterfall"]
