"""OpenFlow controller apps written against the Ryu API, run on os-ken (Ryu's
maintained fork; Ryu 4.34 does not import on Python 3.11).  Install with the
``controllers`` extra (``pip install -e '.[controllers]'``).

None is shipped yet: no open issue needs one.  Labs' switches run as
standalone learning switches (Open vSwitch fail-mode standalone, or a Linux
bridge) until an experiment brings a controller here.
"""
