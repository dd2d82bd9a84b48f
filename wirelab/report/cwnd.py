"""cwnd over time from a transfer's TCP_INFO samples, against the model's rounds."""
from __future__ import annotations

from wirelab.peers.bulk import ServerRecord


def plot_cwnd(path, rec: ServerRecord, t0_s: float, rtt_ms: float, model_cwnd: list[int],
              title: str) -> None:
    """cwnd(t) of the server socket as sampled, against the model's cwnd per
    round: round i's burst leaves the server (i - 1) RTT after it started
    sending (ideally 1.5 RTT after the client's connect(): handshake, then
    the request), so cwnd_i is drawn over [start + (i - 1) r, start + i r)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [(s["t_s"] - t0_s) * 1e3 for s in rec.samples]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step(t, [s["snd_cwnd"] for s in rec.samples], where="post", marker="o", ms=3,
            label="snd_cwnd (TCP_INFO every r/4)")
    ax.step(t, [s["unacked"] for s in rec.samples], where="post", lw=0.8, alpha=0.6,
            label="unacked segments")
    start_ms = (rec.send_start_s - t0_s) * 1e3
    xs, ys = [], []
    for i, c in enumerate(model_cwnd, start=1):
        xs += [start_ms + (i - 1) * rtt_ms, start_ms + i * rtt_ms]
        ys += [c, c]
    ax.plot(xs, ys, "--", color="k", lw=1,
            label=f"model: cwnd per round (from the first send, {start_ms:.1f} ms)")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("time since the client's connect() [ms]")
    ax.set_ylabel("segments")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
