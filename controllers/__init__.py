"""OpenFlow 1.3 controller apps written against the Ryu API, run with os-ken (Ryu's
maintained fork: stock Ryu 4.34 does not install or import on Python 3.11).  Installed
with the ``controllers`` extra (``pip install -e '.[controllers]'``, which provisioning
does).

Each app is a thin os-ken adapter over pure logic that returns flow changes as plain
data (flows.py), unit-tested with no switch:

- learning_switch / learning_switch_app: a learning switch;
- partition / partition_app: the learning switch plus drops between groups of hosts,
  installed and removed on request (the F8 fault timeline sends the requests);
- load_balancer / load_balancer_app: an L4 load balancer, a virtual IP:port spread per
  connection over N backends by set_field rewrites.

ofadapter.py is the only module that imports os-ken; run.py runs one app.  A lab runs
one with wirelab.lab.openflow.OpenFlowLab (OVS's userspace datapath on this machine's
kernel; see there why).
"""
