"""Build a lab on the host kernel, print its tag, and hold it until killed.
Used by the tests to interrupt (SIGINT) or kill (SIGKILL) a live lab."""
import time

from topologies import get
from wirelab.lab import Lab

with Lab(get("routed_path")()) as lab:
    lab["h2"].popen(["sleep", "600"])
    print(lab.tag, flush=True)
    time.sleep(600)
