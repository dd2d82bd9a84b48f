"""wirelab: every claim of a networking course, run on a real Linux network stack,
measured and plotted against its prediction."""

__version__ = "0.1.0"
