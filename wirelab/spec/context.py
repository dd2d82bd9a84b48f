"""What a trial is handed: the point it belongs to, where raw output goes, the kernel
facts its prediction read, and the state prepare() left for it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

#: A trial row may say why it is recorded but not judged (a retransmission, say): the
#: runner runs more trials to make up for it and the summary counts it.
EXCLUDED = "excluded"


def exclusion(*reasons: str) -> dict:
    """{EXCLUDED: the reasons joined} for a trial with any reason, else {}: merged into a
    trial's row, it is recorded and never judged."""
    why = "; ".join(r for r in reasons if r)
    return {EXCLUDED: why} if why else {}


#: Where a point's folder keeps the raw output of trials the host disturbed.
ASIDE = "host-disturbed"


class RawWriter:
    """Writes captured tool output under ``raw/point<NNN>/`` of a run (appending)."""

    def __init__(self, run_dir: Path, point: int):
        self.dir = run_dir / "raw" / f"point{point:03d}"

    def write_text(self, name: str, text: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / name
        with open(path, "a") as f:
            f.write(text)
        return path

    def path(self, name: str) -> Path:
        """Where NAME goes (for a tool that writes a file itself)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / name

    def _files(self):
        for p in sorted(self.dir.rglob("*")) if self.dir.is_dir() else []:
            if p.is_file() and ASIDE not in p.relative_to(self.dir).parts:
                yield p

    def mark(self) -> dict[str, tuple[int, bytes]]:
        """The size and first bytes of every file under this point's folder now (for
        ``set_aside``)."""
        out = {}
        for p in self._files():
            with open(p, "rb") as f:
                out[str(p.relative_to(self.dir))] = (p.stat().st_size, f.read(64))
        return out

    def set_aside(self, mark: dict[str, tuple[int, bytes]], label: str) -> Path:
        """Move what was written since MARK to ``ASIDE/LABEL/``: files made (or rewritten)
        since, whole; the bytes appended to older ones (cut back to their size at MARK).  A
        trial that is not judged keeps its evidence there, and the point's own files hold
        judged trials only."""
        aside = self.dir / ASIDE / label
        for p in list(self._files()):
            rel = str(p.relative_to(self.dir))
            size, head = mark.get(rel, (None, b""))
            with open(p, "rb") as f:
                same_head = f.read(len(head)) == head
            if size == p.stat().st_size and same_head:
                continue
            dest = aside / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if size is None or not same_head or p.stat().st_size < size:
                p.rename(dest)
                continue
            with open(p, "r+b") as f:
                f.seek(size)
                dest.write_bytes(f.read())
                f.truncate(size)
        return aside


@dataclass
class TrialContext:
    """One grid point's context.  ``state`` is what prepare() returned (a
    SimpleNamespace if it returned nothing); ``repeat`` the index of the next row;
    ``measure_point()`` records per-point metrics (counted once, not per trial)."""
    raw: RawWriter
    point: int
    params: dict
    kernel: dict
    predicted: dict
    seed: int
    repeat: int = 0
    state: Any = field(default_factory=SimpleNamespace)
    point_samples: dict[str, list[float]] = field(default_factory=dict)

    def measure_point(self, **values: float | list[float]) -> None:
        """Record per-point measurements: NAME=value or NAME=[values]."""
        for name, value in values.items():
            samples = value if isinstance(value, (list, tuple)) else [value]
            self.point_samples.setdefault(name, []).extend(float(v) for v in samples)
