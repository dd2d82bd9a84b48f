"""The testbed's prompt: Mininet's grammar where it has one.

    nodes | links | dump | help | exit
    NODE COMMAND...                 run COMMAND in NODE (other node names -> addresses)
    shell NODE                      an interactive shell in NODE
    link A B down|up                take the link between A and B down, or up
    link A B delay=80ms jitter=5ms loss=1% rate=10mbit queue=100
             corrupt=1% duplicate=1% reorder=25% [burst=5] [oneway]
                                    change the link live, both directions (oneway: A's
                                    egress only); burst=N makes the loss come in bursts
                                    of N packets on average (netem's Gilbert model)
    partition A,B C,D [oneway]      drop what A and B send to C and D (and back)
    heal                            undo every partition
    kill|pause|resume NODE PROGRAM  SIGKILL, SIGSTOP or SIGCONT every PROGRAM (by name)
                                    running in NODE (a crashed or hung daemon)
    sysctl NODE name[=value]        read or set a per-namespace sysctl
    capture NODE[:IFACE] SECONDS    write a pcap under the results directory
    until SECONDS NODE COMMAND...   run COMMAND in NODE until it succeeds (convergence)

Commands run through ``/bin/sh -c`` in the node (pipes and redirections work), with the
node's own /etc/hosts, resolv.conf and PATH wrappers (see
:mod:`wirelab.testbed.services`).  Ctrl-C stops the running command, not the lab;
``exit`` or Ctrl-D tears the lab down.  With a script (or a standard input that is not
a terminal) every command is echoed with its output and the first one that fails ends
the session with exit status 1.
"""
from __future__ import annotations

import cmd
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from wirelab.errors import BadInput, GlobalSysctlError, LabError, WirelabError
from wirelab.lab import faults, mounts, netns
from wirelab.lab.shaping import Shaping

#: link parameters at the prompt -> (Shaping field, unit suffixes and their factors)
LINK_KEYS = {
    "delay": ("delay_ms", {"ms": 1.0, "s": 1000.0, "us": 0.001, "": 1.0}),
    "jitter": ("jitter_ms", {"ms": 1.0, "s": 1000.0, "us": 0.001, "": 1.0}),
    "loss": ("loss_pct", {"%": 1.0, "": 1.0}),
    "rate": ("bw_mbps", {"kbit": 0.001, "mbit": 1.0, "gbit": 1000.0, "bit": 1e-6}),
    "queue": ("queue_pkts", {"": 1.0, "p": 1.0, "pkts": 1.0}),
    "corrupt": ("corrupt_pct", {"%": 1.0, "": 1.0}),
    "duplicate": ("duplicate_pct", {"%": 1.0, "": 1.0}),
    "reorder": ("reorder_pct", {"%": 1.0, "": 1.0}),
    "burst": ("burst_len_pkts", {"": 1.0, "p": 1.0, "pkts": 1.0}),
}
CAPTURE_MAX_S = 3600


class Failed(Exception):
    """A command at the prompt did not succeed (its message is for the user)."""


def parse_link_value(key: str, raw: str) -> float | None:
    """'80ms' -> 80.0 for delay; 'none' or 'off' clears rate and queue."""
    field_name, units = LINK_KEYS[key]
    text = raw.strip().lower()
    if key in ("rate", "queue") and text in ("none", "off"):
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-z%]*)", text)
    if not m or m.group(2) not in units:
        allowed = ", ".join(u or "(no unit)" for u in units)
        raise Failed(f"link: {key}={raw!r} is not a number with a unit ({allowed})")
    value = float(m.group(1)) * units[m.group(2)]
    return int(round(value)) if field_name == "queue_pkts" else value


class Console(cmd.Cmd):
    prompt = "wirelab> "

    def __init__(self, lab, envs: dict, *, results_dir: Path, name: str = "",
                 interactive: bool = True):
        super().__init__()
        self.lab, self.envs, self.name = lab, envs, name
        self.results_dir = Path(results_dir)
        self.interactive = interactive
        self.status = 0
        self.partitions: list = []          # the undo of each partition in force
        self.paused: dict[tuple[str, str], list] = {}   # (node, program) -> undo of each pause
        self.names = [n for n in lab.topo.nodes() if not lab.topo.isSwitch(n)]
        self.switches = [n for n in lab.topo.nodes() if lab.topo.isSwitch(n)]
        self.addrs = {}
        for n in self.names:
            with contextlib.suppress(LabError):
                self.addrs[n] = lab[n].ip()
        self._word = re.compile(r"(?<!\S)(" + "|".join(
            re.escape(n) for n in sorted(self.addrs, key=len, reverse=True)) + r")(?!\S)") \
            if self.addrs else None

    # -- the loop ------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def run_line(self, line: str) -> tuple[bool, int]:
        """Run one line: (stop?, its status)."""
        self.status = 0
        try:
            stop = bool(self.onecmd(line))
        except Failed as e:
            self.say(f"*** {e}")
            self.status = 2 if not self.status else self.status
            stop = False
        except (BadInput, GlobalSysctlError, LabError, WirelabError) as e:
            self.say(f"*** {e}")
            self.status = 2
            stop = False
        return stop, self.status

    def loop(self) -> int:
        """The interactive prompt (readline editing and history); 0 when left."""
        with contextlib.suppress(ImportError):
            import readline
            readline.set_completer_delims(" \t\n")
        while True:
            try:
                line = input(self.prompt)
            except EOFError:
                self.say("")
                return 0
            except KeyboardInterrupt:        # Ctrl-C at the prompt: cancel the line
                self.say("^C")
                continue
            stop, _ = self.run_line(line)
            if stop:
                return 0

    def run_script(self, lines: list[str]) -> int:
        """Echo and run each line; stop at the first failure (exit status 1)."""
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            self.say(f"{self.prompt}{line}")
            stop, status = self.run_line(line)
            if status:
                self.say(f"wirelab: line {number} failed (status {status}): {line}")
                return 1
            if stop:
                return 0
        return 0

    def emptyline(self) -> bool:
        return False

    def completenames(self, text, *ignored):
        return [n + " " for n in self.names if n.startswith(text)] + super().completenames(text)

    def completedefault(self, text, line, begidx, endidx):
        return [n for n in self.names + self.switches if n.startswith(text)]

    # -- running things in nodes --------------------------------------------------
    def node(self, name: str):
        if name not in self.names:
            raise Failed(f"unknown node {name!r}; nodes: {', '.join(self.names)}")
        return self.lab[name]

    def substitute(self, text: str) -> str:
        """Whole words that are node names -> their first address (Mininet's rule)."""
        return self._word.sub(lambda m: self.addrs[m.group(1)], text) if self._word else text

    def _foreground(self) -> None:
        """Take the terminal back (an interactive shell in a node may have kept it)."""
        if not self.interactive:
            return
        with contextlib.suppress(OSError):
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(0, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, old)

    def spawn(self, name: str, argv: list[str], env_extra: dict | None = None) -> int:
        node, env = self.node(name), self.envs[name]
        environ = {**env.environ(), **(env_extra or {})}
        self.stdout.flush()
        try:
            # Its output straight to ours (live), stderr merged so a transcript keeps order.
            proc = subprocess.Popen(argv, preexec_fn=mounts.preexec(node.ns, env.binds),
                                    env=environ, stderr=subprocess.STDOUT,
                                    stdin=None if self.interactive else subprocess.DEVNULL)
        except FileNotFoundError:
            raise Failed(f"{argv[0]}: not installed") from None
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:       # Ctrl-C reached the command too
                continue
        self._foreground()
        if rc < 0:
            self.say(f"({signal.Signals(-rc).name})")
        return rc

    def default(self, line: str) -> bool:  # type: ignore[override]  # True stops the loop
        words = line.split(None, 1)
        if not words:
            return False
        if words[0] == "EOF":
            return True
        if words[0] not in self.names:
            raise Failed(f"unknown node or command {words[0]!r}; nodes: {', '.join(self.names)}; "
                         "commands: " + ", ".join(self.commands()))
        if len(words) < 2:
            raise Failed(f"{words[0]}: what should it run? e.g. {words[0]} ip addr")
        rc = self.spawn(words[0], ["/bin/sh", "-c", self.substitute(words[1])])
        self.status = 0 if rc == 0 else 1
        return False

    def commands(self) -> list[str]:
        return sorted(n[3:] for n in self.get_names() if n.startswith("do_") and n != "do_EOF")

    # -- the commands ----------------------------------------------------------------
    def do_help(self, arg: str) -> bool:
        """help: what you can type here"""
        self.say(__doc__.split("\n\n")[1].rstrip() if __doc__ else "")
        self.say(f"nodes: {', '.join(self.names)}")
        return False

    def do_exit(self, arg: str) -> bool:
        """exit: tear the lab down and leave"""
        return True

    do_quit = do_exit

    def do_EOF(self, arg: str) -> bool:
        self.say("")
        return True

    def do_nodes(self, arg: str) -> bool:
        """nodes: every node, its role and first address"""
        for n in self.names:
            node = self.lab[n]
            services = ", ".join(sorted(self.envs[n].services)) if n in self.envs else ""
            self.say(f"{n:12s} {node.role:7s} {self.addrs.get(n, '-'):16s} {services}")
        for s in self.switches:
            self.say(f"{s:12s} switch")
        return False

    def link_ends(self, a: str, b: str) -> list[tuple]:
        """[(node, ifname), (node, ifname)] of the link between A and B."""
        try:
            return self.lab.link_ends(a, b)
        except BadInput as e:
            raise Failed(f"{e} (see `links`)") from None

    def do_links(self, arg: str) -> bool:
        """links: every link, its two interfaces and their shaping"""
        for n1, n2 in self.lab.topo.links(sort=True):
            ends = []
            for node, ifname in self.link_ends(n1, n2):
                intf = node.intfs.get(ifname)
                shaping = _shaping_text(intf.shaping) if intf else ""
                ends.append(f"{ifname}{' (' + shaping + ')' if shaping else ''}")
            self.say(f"{n1}<->{n2}: {ends[0]} <-> {ends[1]}")
        return False

    def do_dump(self, arg: str) -> bool:
        """dump: addresses, routes and qdiscs of every node (or of the nodes named)"""
        wanted = arg.split() or self.names
        for n in wanted:
            node = self.node(n)
            self.say(f"{n} ({node.role}, namespace {node.ns})")
            for intf in node.intfs.values():
                state = _oper_state(node, intf.index)
                shaping = _shaping_text(intf.shaping)
                other = intf.peer.switch or intf.peer.node.name if intf.peer else "?"
                peer = f" -> {other}"
                self.say(f"  {intf.name:10s} {intf.ip or '-':18s} {state:5s}{peer}"
                         + (f"  [{shaping}]" if shaping else ""))
            for r in _routes(node):
                self.say(f"  route {r}")
        return False

    def do_link(self, arg: str) -> bool:
        """link A B down|up, or link A B delay=80ms jitter=5ms loss=1% rate=10mbit queue=100"""
        words = arg.split()
        if len(words) < 3:
            raise Failed("usage: link A B down|up, or link A B delay=80ms jitter=5ms loss=1% "
                         "rate=10mbit queue=100")
        ends = self.link_ends(words[0], words[1])
        if words[2:] in (["down"], ["up"]):
            again = self.lab.set_link(words[0], words[1], words[2] == "up")
            self.say(f"link {words[0]}-{words[1]} {words[2]}")
            if again:
                self.say(f"{again} static route{'s' if again > 1 else ''} of the topology "
                         "installed again")
            return False
        changes: dict = {}
        oneway = "oneway" in words[2:]
        for w in (w for w in words[2:] if w != "oneway"):
            key, sep, raw = w.partition("=")
            if not sep or key not in LINK_KEYS:
                raise Failed(f"link: {w!r}: expected down, up, oneway or KEY=VALUE with KEY one "
                             f"of {', '.join(LINK_KEYS)}")
            changes[LINK_KEYS[key][0]] = parse_link_value(key, raw)
        if "burst_len_pkts" in changes:         # loss=20% burst=5: the loss comes in bursts
            changes["burst_loss_pct"] = changes.pop("loss_pct", None) or 0.0
            changes.setdefault("loss_pct", 0.0)
        elif "loss_pct" in changes:             # plain loss replaces a burst model
            changes |= {"burst_loss_pct": 0.0, "burst_len_pkts": 0.0}
        try:
            fault = faults.Impair(words[0], words[1], changes, direction="a>b" if oneway else "both")
        except BadInput as e:
            raise Failed(str(e)) from None
        try:
            fault.apply(self.lab)
        except Exception as e:   # noqa: BLE001 - netlink's own words, for the user
            raise Failed(f"link {words[0]}-{words[1]}: the kernel refused the qdisc ({e}); a "
                         "kernel without netem needs --kernel uml") from e
        for node, ifname in ends[:1] if oneway else ends:
            res = subprocess.run(["tc", "qdisc", "show", "dev", ifname], capture_output=True,
                                 text=True, preexec_fn=mounts.preexec(node.ns))
            for q in res.stdout.splitlines():
                self.say(f"{ifname}: {q.strip()}")
        return False

    def do_partition(self, arg: str) -> bool:
        """partition A,B C,D [oneway]: drop what A and B send to C and D (and back)"""
        words = arg.split()
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] != "oneway"):
            raise Failed("usage: partition A,B C,D [oneway]")
        groups = [tuple(w.split(",")) for w in words[:2]]
        for name in (n for g in groups for n in g):
            self.node(name)
        fault = faults.Partition(groups[0], groups[1], one_way=len(words) == 3)
        self.partitions.append(fault.apply(self.lab))
        self.say(f"{fault.describe()} (heal undoes it)")
        return False

    def do_heal(self, arg: str) -> bool:
        """heal: undo every partition"""
        while self.partitions:
            self.partitions.pop()()
        self.say("every partition healed")
        return False

    def programs(self, name: str) -> dict[int, str]:
        """{pid: program name} of every live process in NODE's network namespace (found
        through /proc/PID/ns/net: never a process of the host or of another node)."""
        out = {}
        for pid in netns.pids_in(netns.inode(self.node(name).ns)):
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":     # a killed one, not yet reaped
                    out[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        return out

    def _signal(self, arg: str, kind: str) -> bool:
        words = arg.split()
        if len(words) != 2:
            raise Failed(f"usage: {kind} NODE PROGRAM, e.g. {kind} ns1 named")
        node, program = words
        running = self.programs(node)
        pids = sorted(pid for pid, comm in running.items() if comm == program[:15])
        if kind == "resume":
            undos = self.paused.pop((node, program), [])
            if not undos:
                raise Failed(f"resume: {program} in {node} is not paused here")
            for undo in undos:
                undo()
            self.say(f"resumed {program} in {node}")
            return False
        if not pids:
            raise Failed(f"no {program!r} running in {node}; running there: "
                         + (", ".join(sorted(set(running.values()))) or "nothing"))
        for pid in pids:
            undo = faults.Signal(program, kind).apply(self.lab, {program: pid})
            if kind == "pause":
                self.paused.setdefault((node, program), []).append(_once(undo))
                self.lab.undo.push(f"resume {program} ({pid}) in {node}", self.paused[(node, program)][-1])
        self.say(f"{'killed' if kind == 'kill' else 'paused'} {program} in {node} (pid "
                 f"{', '.join(map(str, pids))})" + (f"; resume {node} {program} undoes it"
                                                    if kind == "pause" else ""))
        return False

    def do_kill(self, arg: str) -> bool:
        """kill NODE PROGRAM: SIGKILL every PROGRAM running in NODE (a crash)"""
        return self._signal(arg, "kill")

    def do_pause(self, arg: str) -> bool:
        """pause NODE PROGRAM: SIGSTOP every PROGRAM running in NODE (a hang; resume undoes it)"""
        return self._signal(arg, "pause")

    def do_resume(self, arg: str) -> bool:
        """resume NODE PROGRAM: SIGCONT what pause stopped"""
        return self._signal(arg, "resume")

    def do_sysctl(self, arg: str) -> bool:
        """sysctl NODE name[=value]: read or set a per-namespace (net.*) sysctl"""
        words = arg.split()
        if len(words) != 2:
            raise Failed("usage: sysctl NODE name[=value], e.g. sysctl r1 net.ipv4.ip_forward=0")
        node = self.node(words[0])
        name, sep, value = words[1].partition("=")
        got = node.sysctl(name, value if sep else None)
        self.say(f"{name} = {got}")
        return False

    def do_shell(self, arg: str) -> bool:
        """shell NODE: an interactive shell in NODE; leave it with exit or Ctrl-D"""
        words = arg.split()
        if len(words) != 1:
            raise Failed("usage: shell NODE")
        if not self.interactive or not sys.stdin.isatty():
            raise Failed("shell needs a terminal (run wirelab up without --script)")
        self.node(words[0])
        self.spawn(words[0], ["bash", "--norc", "-i"],
                   {"PS1": f"{words[0]}# ", "WIRELAB_NODE": words[0]})
        return False

    def do_until(self, arg: str) -> bool:
        """until SECONDS NODE COMMAND...: repeat COMMAND (quietly, every 0.5 s) until it
        succeeds, then show its output; fail after SECONDS"""
        words = arg.split(None, 2)
        if len(words) < 3:
            raise Failed("usage: until SECONDS NODE COMMAND..., e.g. until 30 sjc vtysh -c "
                         "'show ip bgp' | grep 10.4.0.0")
        try:
            seconds = float(words[0])
        except ValueError:
            raise Failed(f"until: {words[0]!r} is not a number of seconds") from None
        if not 0 < seconds <= CAPTURE_MAX_S:
            raise Failed(f"until: {words[0]} s is outside 0-{CAPTURE_MAX_S} s")
        node, env = self.node(words[1]), self.envs[words[1]]
        argv = ["/bin/sh", "-c", self.substitute(words[2])]
        t0 = time.monotonic()
        while True:
            try:
                res = subprocess.run(argv, preexec_fn=mounts.preexec(node.ns, env.binds),
                                     env=env.environ(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     timeout=max(1.0, seconds - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else ""
                res = subprocess.CompletedProcess(argv, 124, out or "")
            waited = time.monotonic() - t0
            if res.returncode == 0 or waited >= seconds:
                break
            time.sleep(0.5)
        self.stdout.write(res.stdout)
        if res.returncode != 0:
            raise Failed(f"until: still failing after {seconds:g} s (exit {res.returncode})")
        self.say(f"(after {waited:.1f} s)")
        return False

    def do_capture(self, arg: str) -> bool:
        """capture NODE[:IFACE] SECONDS: a pcap under the results directory, for Wireshark"""
        words = arg.split()
        if len(words) != 2:
            raise Failed("usage: capture NODE[:IFACE] SECONDS, e.g. capture r1:r1-eth0 10")
        name, _, ifname = words[0].partition(":")
        node = self.node(name)
        ifname = ifname or next(iter(node.intfs), "any")
        if ifname != "any" and ifname not in node.intfs:
            raise Failed(f"{name} has no interface {ifname!r}; it has: {', '.join(node.intfs)}")
        try:
            seconds = float(words[1])
        except ValueError:
            raise Failed(f"capture: {words[1]!r} is not a number of seconds") from None
        if not 0 < seconds <= CAPTURE_MAX_S:
            raise Failed(f"capture: {words[1]} s is outside 0-{CAPTURE_MAX_S} s")
        out_dir = self.results_dir / "captures"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{self.name or 'lab'}-{name}-{ifname}.pcap"
        proc = subprocess.Popen(["tcpdump", "-i", ifname, "-U", "-w", str(path)],
                                preexec_fn=mounts.preexec(node.ns), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            end = time.monotonic() + seconds
            while proc.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        counted = re.search(r"(\d+) packets? captured", err.decode(errors="replace"))
        if proc.returncode not in (0, -signal.SIGINT) or not path.exists():
            raise Failed(f"tcpdump on {name}:{ifname} failed: {err.decode(errors='replace')[-300:]}")
        self.say(f"{counted.group(1) if counted else '?'} packets -> {path}")
        return False


def _once(fn):
    """FN, run at most once (a resume at the prompt, then again as the lab closes)."""
    done: list[bool] = []

    def run() -> None:
        if not done:
            done.append(True)
            fn()
    return run


def _topo_name(lab, node, ifname: str) -> str:
    """The lab's name for the node owning IFNAME (a switch port belongs to the switch
    namespace, whose lab name is any of its switches)."""
    for name, n in lab.nodes.items():
        if n is node and ifname in n.intfs:
            return name
    raise LabError(f"no node owns {ifname}")


def _shaping_text(s: Shaping) -> str:
    parts = []
    if s.delay_ms:
        parts.append(f"delay {s.delay_ms:g}ms")
    if s.jitter_ms:
        parts.append(f"jitter {s.jitter_ms:g}ms")
    if s.loss_pct:
        parts.append(f"loss {s.loss_pct:g}%")
    if s.bw_mbps is not None:
        parts.append(f"rate {s.bw_mbps:g}mbit")
    if s.queue_pkts is not None:
        parts.append(f"queue {s.queue_pkts}")
    return " ".join(parts)


def _oper_state(node, index: int) -> str:
    for link in node.ipr.get_links(index):
        return str(link.get_attr("IFLA_OPERSTATE") or "?").lower()
    return "?"


def _routes(node) -> list[str]:
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in node.ipr.get_links()}
    out = []
    for r in node.ipr.get_routes(family=socket.AF_INET, table=254):
        dst = r.get_attr("RTA_DST")
        dst = f"{dst}/{r['dst_len']}" if dst else "default"
        gw = r.get_attr("RTA_GATEWAY")
        dev = names.get(r.get_attr("RTA_OIF"), "?")
        out.append(f"{dst}" + (f" via {gw}" if gw else "") + f" dev {dev}")
    return out
