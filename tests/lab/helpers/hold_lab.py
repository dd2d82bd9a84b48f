"""Build a lab on the host kernel, print its tag, and hold it until killed.
Used by the tests to interrupt (SIGINT) or kill (SIGKILL) a live lab."""
import time

from wirelab.lab.net import Lab
from wirelab.topologies.routed_path import RoutedPath

with Lab(RoutedPath()) as lab:
    lab["h2"].popen(["sleep", "600"])
    print(lab.tag, flush=True)
    time.sleep(600)
